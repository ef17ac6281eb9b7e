"""One-hot encodes categorical columns of a table.

Each encoded column `col` becomes one float64 0/1 column per category, named
`col=value`, in the place of `col` (or right after it, with `drop=false`). A
missing value stays missing in every new column. The categories are output as
JSON; given a `categories` input (another onehot step's output), the step learns
nothing and encodes exactly those columns and categories instead: fit on the
training rows, then encode the test rows the same way. A value not among the
categories is encoded as all zeros.

Text and boolean columns are encoded by their text; int64 columns (codes, years...)
when named in `columns`. Float64 columns are refused: bin them first.
"""

import kiln

ENCODABLE = ("text", "int64", "boolean")


def category(value):
    """A cell's category: its text form (None for missing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def learn(table, column, max_categories):
    """The sorted distinct categories of a column (ints sorted as numbers)."""
    present = {v for v in table[column] if v is not None}
    if len(present) > max_categories:
        raise kiln.invalid_input(
            f"column `{column}` has {len(present)} distinct values, more than max_categories = "
            f"{max_categories}: is it an identifier? Raise max_categories to encode it anyway"
        )
    return [category(v) for v in sorted(present)]


def read_categories(fitted):
    """Checks a `categories` input: {column: [category, ...]}."""
    if not isinstance(fitted, dict):
        raise kiln.invalid_input("`categories` must be a JSON object of column name to a list of categories")
    for column, cats in fitted.items():
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise kiln.invalid_input(f"`categories` for column `{column}` must be a list of strings")
        if len(set(cats)) != len(cats):
            raise kiln.invalid_input(f"`categories` for column `{column}` lists a category twice")
    return fitted


def encode(table, categories, drop):
    """A new table with each column of `categories` one-hot encoded in place."""
    out = kiln.Table()
    for name in table.columns:
        if name not in categories:
            out.add(name, table[name], table.type(name))
            continue
        if not drop:
            out.add(name, table[name], table.type(name))
        cells = [category(v) for v in table[name]]
        for cat in categories[name]:
            new = f"{name}={cat}"
            if new in table or new in out:
                raise kiln.invalid_input(f"the encoded column `{new}` would clash with an existing column")
            out.add(new, [None if c is None else (1.0 if c == cat else 0.0) for c in cells], "float64")
    return out


class Step(kiln.Step):
    descriptor = (
        kiln.Descriptor("onehot", "One-hot encodes categorical columns of a table")
        .input("table", "table", "the table")
        .optional_input(
            "categories",
            "json",
            "the categories to encode instead of learning them (a `categories` output)",
        )
        .output("table", "table", "the table with one float64 0/1 column per category, named `col=value`")
        .output("categories", "json", "each encoded column's categories, in column order")
        .config("columns", None, "columns to encode (default: every text column); int64 and boolean columns too")
        .config("drop", True, "drop the encoded columns (true) or keep them beside their encoding (false)")
        .config("max_categories", 100, "refuse a column with more distinct values than this")
    )

    def process(self, inputs, config):
        table = inputs.table("table")
        drop = config.bool("drop")
        max_categories = config.int("max_categories")
        if max_categories < 1:
            raise kiln.invalid_config(f"max_categories must be at least 1, not {max_categories}")
        fitted = inputs.optional("categories", "json")

        if fitted is not None:
            categories = read_categories(fitted)
            named = config.list("columns")
            if named and named != list(categories):
                kiln.log.warn("`columns` is ignored: the `categories` input decides the columns encoded")
            for column in categories:
                if column not in table:
                    raise kiln.invalid_input(
                        f"`categories` encodes column `{column}`, which the table does not have"
                    )
        else:
            columns = config.list("columns") or table.text_columns()
            if not columns:
                raise kiln.invalid_input(
                    "the table has no text columns to encode; name int64 or boolean columns in `columns`"
                )
            categories = {}
            for column in columns:
                ctype = table.type(column)
                if ctype not in ENCODABLE:
                    raise kiln.invalid_input(
                        f"column `{column}` is {ctype}; onehot encodes text, int64 or boolean columns"
                    )
                categories[column] = learn(table, column, max_categories)

        for column in categories:
            ctype = table.type(column)
            if ctype not in ENCODABLE:
                raise kiln.invalid_input(f"column `{column}` is {ctype}; onehot encodes text, int64 or boolean columns")

        for column, cats in categories.items():
            known = set(cats)
            unknown = sum(1 for v in table[column] if v is not None and category(v) not in known)
            if unknown:
                kiln.log.warn("column `%s`: %d rows hold an unknown category; they encode as zeros", column, unknown)
        return {"table": encode(table, categories, drop), "categories": categories}
