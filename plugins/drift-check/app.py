"""Checks that a table's columns are distributed as in a reference table.

For every compared numeric column it reports two checks, with the figure observed:

- `<col>.ks`: the two-sample Kolmogorov-Smirnov statistic, the largest gap between
  the two empirical distribution functions (0: the same values, 1: no overlap).
  Passes when at most `max_ks`. The detail gives the asymptotic p-value.
- `<col>.mean_shift`: how far the mean moved, in reference standard deviations
  (|mean(data) - mean(reference)| / std(reference)). Passes when at most
  `max_mean_shift`.

A column named in `columns` that is text or boolean on both sides is compared by
its categories instead: `<col>.tvd`, the total variation distance between the two
category frequencies (half the sum of absolute differences), against `max_tvd`.

Missing values are left out (and counted in the detail). A column absent from one
side, of different types on the two sides, or with no values left gives one failed
check rather than an error. Standard library only.
"""

import math

import kiln

SEVERITIES = ("info", "warning", "error")


def present(values):
    return [v for v in values if v is not None]


def ks_statistic(xs, ys):
    """The two-sample Kolmogorov-Smirnov statistic of two non-empty samples."""
    xs, ys = sorted(xs), sorted(ys)
    n, m = len(xs), len(ys)
    i = j = 0
    d = 0.0
    while i < n and j < m:
        v = min(xs[i], ys[j])
        while i < n and xs[i] == v:  # step over ties on both sides at once
            i += 1
        while j < m and ys[j] == v:
            j += 1
        d = max(d, abs(i / n - j / m))
    return d


def ks_p_value(d, n, m):
    """The asymptotic p-value of a KS statistic (Kolmogorov's distribution)."""
    ne = n * m / (n + m)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    if lam < 1e-3:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def mean(xs):
    return math.fsum(xs) / len(xs)


def std(xs):
    """The sample standard deviation (0 for fewer than two values)."""
    if len(xs) < 2:
        return 0.0
    mu = mean(xs)
    return math.sqrt(math.fsum((x - mu) ** 2 for x in xs) / (len(xs) - 1))


def short(x):
    return f"{x:.4g}"


def missing_note(data, ref):
    notes = [f"{k} missing in {side}" for side, k in (("data", data), ("reference", ref)) if k]
    return f"; {', '.join(notes)}" if notes else ""


class Validator(kiln.Validator):
    descriptor = (
        kiln.Descriptor("drift-check", "Checks that a table's columns are distributed as in a reference table")
        .input("data", "table", "the table to check, e.g. new rows to score")
        .input("reference", "table", "the table it should resemble, e.g. the training rows")
        .config("columns", None, "columns to compare (default: the numeric columns both tables have)")
        .config("max_ks", 0.3, "the largest two-sample Kolmogorov-Smirnov statistic accepted, 0 to 1")
        .config("max_mean_shift", 1.0, "the largest mean shift accepted, in reference standard deviations")
        .config("max_tvd", 0.2, "the largest total variation distance accepted for a text or boolean column")
        .config("severity", "warning", "how much a failed check matters: info, warning or error")
    )

    def process(self, inputs, config):
        data = inputs.table("data")
        ref = inputs.table("reference")
        max_ks = config.float("max_ks")
        max_shift = config.float("max_mean_shift")
        max_tvd = config.float("max_tvd")
        severity = config.choice("severity", SEVERITIES)
        if not 0 <= max_ks <= 1:
            raise kiln.invalid_config(f"max_ks must be between 0 and 1, not {max_ks}")
        if not 0 <= max_tvd <= 1:
            raise kiln.invalid_config(f"max_tvd must be between 0 and 1, not {max_tvd}")
        if max_shift < 0:
            raise kiln.invalid_config(f"max_mean_shift must be at least 0, not {max_shift}")

        columns = config.list("columns")
        if not columns:
            columns = [c for c in data.numeric_columns() if c in ref.numeric_columns()]
            if not columns:
                raise kiln.invalid_input(
                    "data and reference have no numeric column in common; name the columns in `columns`"
                )

        checks = []
        for col in columns:
            checks.extend(self.compare(col, data, ref, severity, max_ks, max_shift, max_tvd))
        failed = sum(1 for c in checks if not c.passed)
        kiln.log.info("drift-check: %d of %d checks failed over %d columns", failed, len(checks), len(columns))
        return checks

    def compare(self, col, data, ref, severity, max_ks, max_shift, max_tvd):
        def fail(detail):
            return [kiln.check(f"{col}.present", False, severity, None, detail)]

        sides = [name for name, t in (("data", data), ("reference", ref)) if col not in t]
        if sides:
            return fail(f"column `{col}` is missing from {' and '.join(sides)}")
        types = (data.type(col), ref.type(col))
        numeric = all(t in ("float64", "int64") for t in types)
        categorical = all(t in ("text", "boolean") for t in types)
        if not (numeric or categorical):
            return fail(f"column `{col}` is {types[0]} in data but {types[1]} in reference")

        xs, ys = present(data[col]), present(ref[col])
        note = missing_note(len(data[col]) - len(xs), len(ref[col]) - len(ys))
        empty = [name for name, v in (("data", xs), ("reference", ys)) if not v]
        if empty:
            return fail(f"column `{col}` has no values in {' and '.join(empty)}{note}")

        if categorical:
            return [self.tvd(col, xs, ys, severity, max_tvd, note)]

        xs, ys = [float(x) for x in xs], [float(y) for y in ys]
        if any(math.isnan(v) for v in xs + ys):
            xs, ys = [x for x in xs if not math.isnan(x)], [y for y in ys if not math.isnan(y)]
            if not xs or not ys:
                return fail(f"column `{col}` has only NaN values on one side{note}")
        d = ks_statistic(xs, ys)
        p = ks_p_value(d, len(xs), len(ys))
        ks = kiln.check(
            f"{col}.ks",
            d <= max_ks,
            severity,
            d,
            f"KS statistic {short(d)} (max {short(max_ks)}), p ~ {short(p)}, "
            f"{len(xs)} data and {len(ys)} reference values{note}",
        )

        mu_d, mu_r, sd_r = mean(xs), mean(ys), std(ys)
        gap = abs(mu_d - mu_r)
        if sd_r > 0:
            shift = gap / sd_r
            detail = (
                f"mean {short(mu_d)} against {short(mu_r)} in reference: "
                f"{short(shift)} standard deviations ({short(sd_r)}); max {short(max_shift)}"
            )
            passed = shift <= max_shift
        else:
            shift = 0.0 if gap == 0 else math.inf
            passed = gap == 0
            detail = f"mean {short(mu_d)} against a constant {short(mu_r)} in reference"
        return [ks, kiln.check(f"{col}.mean_shift", passed, severity, shift, detail + note)]

    def tvd(self, col, xs, ys, severity, max_tvd, note):
        def freq(values):
            counts = {}
            for v in values:
                counts[v] = counts.get(v, 0) + 1
            return {k: c / len(values) for k, c in counts.items()}

        fx, fy = freq(xs), freq(ys)
        tvd = 0.5 * math.fsum(abs(fx.get(k, 0.0) - fy.get(k, 0.0)) for k in set(fx) | set(fy))
        new = sorted(str(k) for k in set(fx) - set(fy))
        detail = f"total variation distance {short(tvd)} (max {short(max_tvd)})"
        if new:
            shown = ", ".join(new[:5]) + (", ..." if len(new) > 5 else "")
            detail += f"; categories not in reference: {shown}"
        return kiln.check(f"{col}.tvd", tvd <= max_tvd, severity, tvd, detail + note)
