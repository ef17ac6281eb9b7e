"""The Python SDK for Kiln plugins.

A Kiln plugin is a WebAssembly component implementing one role of the contract
``kiln:plugin@0.1.0``: a step, a validator, a model runner or a tracker.
``kiln plugin build`` turns a Python project (``app.py`` plus ``kiln.toml``) into
one with componentize-py, dropping this module beside ``app.py``.

A plugin subclasses the role's base class under the role's name in ``app.py``::

    import kiln

    class Step(kiln.Step):
        descriptor = (
            kiln.Descriptor("double", "Doubles a scalar")
            .input("x", "scalar", "a number")
            .output("y", "scalar", "twice x")
        )

        def process(self, inputs, config):
            return {"y": 2 * inputs.scalar("x")}

The base classes convert the contract's values to friendly Python ones
(:class:`Table`, :class:`Tensor`, floats, strings, bytes, parsed JSON), check the
declared inputs and config, and turn a :class:`KilnError` into the contract's
error result. Any other exception becomes an ``internal`` error naming the
exception: a plugin never traps.

Everything a plugin needs must be imported at the top of a module: componentize-py
runs the module once at build time and snapshots it, and the component cannot
import further modules at run time.
"""

import json
import math
import struct
import sys
import traceback
import types as _pytypes

from componentize_py_types import Err
from wit_world.imports import log as _wit_log
from wit_world.imports import types as wit

try:  # only the step and validator worlds import tracking
    from wit_world.imports import tracking as _wit_tracking
except ImportError:  # pragma: no cover - depends on the world built
    _wit_tracking = None

__all__ = [
    "KilnError",
    "invalid_input",
    "invalid_config",
    "unsupported",
    "internal",
    "Tensor",
    "Table",
    "Inputs",
    "Config",
    "Json",
    "Descriptor",
    "Metadata",
    "Event",
    "check",
    "log",
    "log_metric",
    "log_param",
    "set_tag",
    "Step",
    "Validator",
    "ModelRunner",
    "Model",
    "Tracker",
]


# ---------------------------------------------------------------------------
# Errors


_ERROR_KINDS = {
    "invalid-input": wit.ErrorKind.INVALID_INPUT,
    "invalid-config": wit.ErrorKind.INVALID_CONFIG,
    "unsupported": wit.ErrorKind.UNSUPPORTED,
    "internal": wit.ErrorKind.INTERNAL,
}


class KilnError(Exception):
    """A failure the plugin reports on purpose, returned to the host as an error.

    ``kind`` is one of ``invalid-input``, ``invalid-config``, ``unsupported``,
    ``internal``. Raise one from the helpers: ``raise kiln.invalid_input("...")``.
    """

    def __init__(self, kind, message):
        if kind not in _ERROR_KINDS:
            raise ValueError(f"error kind `{kind}` must be one of {', '.join(_ERROR_KINDS)}")
        super().__init__(message)
        self.kind = kind
        self.message = str(message)

    def __str__(self):
        return f"{self.kind}: {self.message}"

    def to_wit(self):
        return wit.Error(_ERROR_KINDS[self.kind], self.message)

    @staticmethod
    def invalid_input(message):
        """The inputs are missing, of the wrong kind, or hold bad data."""
        return KilnError("invalid-input", message)

    @staticmethod
    def invalid_config(message):
        """A config key is missing or holds a bad value."""
        return KilnError("invalid-config", message)

    @staticmethod
    def unsupported(message):
        """The plugin does not support what was asked."""
        return KilnError("unsupported", message)

    @staticmethod
    def internal(message):
        """Something went wrong inside the plugin."""
        return KilnError("internal", message)


invalid_input = KilnError.invalid_input
invalid_config = KilnError.invalid_config
unsupported = KilnError.unsupported
internal = KilnError.internal


def _internal_from(exc):
    """An `internal` error for an unexpected exception: `Type: message (where)`."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, ImportError):
        text += " (import every module at the top of app.py: modules load at build time only)"
    try:
        frames = traceback.extract_tb(exc.__traceback__)
        # The innermost frame of the plugin's own code, else the innermost of all.
        own = [f for f in frames if not f.filename.endswith("kiln.py")]
        where = (own or frames)[-1] if frames else None
        if where is not None:
            text += f" ({where.filename.rsplit('/', 1)[-1]} line {where.lineno}, in {where.name})"
        _log(_wit_log.Level.DEBUG, "".join(traceback.format_exception(exc)))
    except Exception:  # noqa: BLE001 - the error itself matters more than its location
        pass
    return wit.Error(wit.ErrorKind.INTERNAL, text)


def _guard(fn, *args):
    """Calls `fn`; errors become the contract's `Err(error)`, never a trap."""
    try:
        return fn(*args)
    except KilnError as e:
        raise Err(e.to_wit()) from None
    except Err as e:
        if isinstance(e.value, wit.Error):
            raise
        raise Err(wit.Error(wit.ErrorKind.INTERNAL, f"Err: {e.value!r}")) from None
    except BaseException as e:  # noqa: BLE001 - a plugin must not trap
        raise Err(_internal_from(e)) from None


# ---------------------------------------------------------------------------
# Logging and tracking


def _log(level, message):
    try:
        _wit_log.log(level, message)
    except NotImplementedError:  # bindings outside a component, e.g. in unit tests
        print(f"[{level.name.lower()}] {message}", file=sys.stderr)


def _format(message, args):
    message = str(message)
    if args:
        try:
            message = message % args
        except (TypeError, ValueError):
            message = " ".join([message, *map(str, args)])
    return message


class _Log:
    """Levelled logging into the host's log: ``kiln.log.info("read %d rows", n)``."""

    def trace(self, message, *args):
        _log(_wit_log.Level.TRACE, _format(message, args))

    def debug(self, message, *args):
        _log(_wit_log.Level.DEBUG, _format(message, args))

    def info(self, message, *args):
        _log(_wit_log.Level.INFO, _format(message, args))

    def warn(self, message, *args):
        _log(_wit_log.Level.WARN, _format(message, args))

    warning = warn

    def error(self, message, *args):
        _log(_wit_log.Level.ERROR, _format(message, args))


log = _Log()


def _tracking(what):
    if _wit_tracking is None:
        raise KilnError.unsupported(f"{what}: this role has no run to track (steps and validators do)")
    return _wit_tracking


def log_metric(key, value, step=0):
    """Logs a metric to the current run (steps and validators only)."""
    try:
        _tracking("log_metric").log_metric(str(key), float(value), int(step))
    except NotImplementedError:
        print(f"[metric] {key} = {value} at step {step}", file=sys.stderr)


def log_param(key, value):
    """Logs a parameter of the current run (steps and validators only)."""
    try:
        _tracking("log_param").log_param(str(key), _config_text(value))
    except NotImplementedError:
        print(f"[param] {key} = {value}", file=sys.stderr)


def set_tag(key, value):
    """Sets a tag on the current run (steps and validators only)."""
    try:
        _tracking("set_tag").set_tag(str(key), _config_text(value))
    except NotImplementedError:
        print(f"[tag] {key} = {value}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Tensors

_DTYPES = {
    # name: (wit dtype, struct code, element kind)
    "float32": (wit.Dtype.FLOAT32, "f", float),
    "float64": (wit.Dtype.FLOAT64, "d", float),
    "int32": (wit.Dtype.INT32, "i", int),
    "int64": (wit.Dtype.INT64, "q", int),
    "uint8": (wit.Dtype.UINT8, "B", int),
    "boolean": (wit.Dtype.BOOLEAN, "B", bool),
}
_DTYPE_NAMES = {v[0]: k for k, v in _DTYPES.items()}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1), "uint8": (0, 255)}


def _dtype(name):
    if isinstance(name, wit.Dtype):
        return _DTYPE_NAMES[name]
    if name not in _DTYPES:
        raise ValueError(f"dtype `{name}` must be one of {', '.join(_DTYPES)}")
    return name


def _product(dims):
    n = 1
    for d in dims:
        n *= d
    return n


def _flatten(nested):
    """Flattens nested lists; returns (values, shape). Ragged lists are refused."""
    if not isinstance(nested, (list, tuple)):
        return [nested], ()
    if not nested:
        return [], (0,)
    if not any(isinstance(x, (list, tuple)) for x in nested):
        return list(nested), (len(nested),)
    parts = [_flatten(x) for x in nested]
    inner = parts[0][1]
    if any(p[1] != inner for p in parts):
        raise ValueError("ragged nested lists: every row must have the same shape")
    return [v for p in parts for v in p[0]], (len(nested), *inner)


def _cast(values, dtype):
    kind = _DTYPES[dtype][2]
    if kind is float:
        return [float(v) for v in values]
    if kind is bool:
        return [bool(v) for v in values]
    return [int(v) for v in values]


class Tensor:
    """A dense, row-major tensor: a ``dtype`` name, a ``shape`` tuple and ``values``,
    a flat Python list (floats, ints or bools).

    ``Tensor([[1, 2], [3, 4]])`` infers the shape; ``Tensor(values, shape=(2, 2))``
    reshapes a flat list. Arithmetic works elementwise with numbers and tensors of
    the same shape (or of a trailing part of it, as numpy broadcasts a row).
    """

    __slots__ = ("dtype", "shape", "values")

    def __init__(self, values=(), shape=None, dtype=None):
        if isinstance(values, Tensor):
            values, shape, dtype = values.values, shape or values.shape, dtype or values.dtype
        if isinstance(values, (bool, int, float)):
            flat, inferred = [values], ()
        else:
            flat, inferred = _flatten(values if isinstance(values, (list, tuple)) else list(values))
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(int(d) for d in (inferred if shape is None else shape))
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimension in shape {shape}")
        if _product(shape) != len(flat):
            raise ValueError(f"{len(flat)} values do not fit shape {shape}")
        if dtype is None:
            if flat and all(isinstance(v, bool) for v in flat):
                dtype = "boolean"
            elif flat and all(isinstance(v, int) for v in flat):
                dtype = "int64"
            else:
                dtype = "float64"
        self.dtype = _dtype(dtype)
        self.shape = shape
        self.values = _cast(flat, self.dtype)

    # -- construction

    @classmethod
    def zeros(cls, shape, dtype="float64"):
        return cls.full(shape, 0, dtype)

    @classmethod
    def ones(cls, shape, dtype="float64"):
        return cls.full(shape, 1, dtype)

    @classmethod
    def full(cls, shape, value, dtype="float64"):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return cls([value] * _product(shape), shape, dtype)

    @classmethod
    def from_rows(cls, rows, dtype=None):
        """A 2-D tensor from a list of equal-length rows."""
        rows = [list(r) for r in rows]
        width = len(rows[0]) if rows else 0
        if any(len(r) != width for r in rows):
            raise ValueError("rows must all have the same length")
        return cls([v for r in rows for v in r], (len(rows), width), dtype)

    @classmethod
    def from_wit(cls, t):
        """Decodes the contract's tensor, checking its data against its shape."""
        dtype = _DTYPE_NAMES[t.dtype]
        _, code, _ = _DTYPES[dtype]
        shape = tuple(int(d) for d in t.shape)
        count = _product(shape)
        size = struct.calcsize("<" + code)
        if count * size != len(t.data):
            raise KilnError.invalid_input(
                f"tensor of shape {list(shape)} and dtype {dtype} needs {count * size} bytes, has {len(t.data)}"
            )
        out = cls.__new__(cls)
        out.dtype, out.shape = dtype, shape
        if dtype == "boolean":
            out.values = [b != 0 for b in t.data]
        elif dtype == "uint8":
            out.values = list(t.data)
        else:
            out.values = list(struct.unpack(f"<{count}{code}", t.data))
        return out

    def to_wit(self):
        """Encodes the tensor as the contract's tensor (little-endian, packed)."""
        wit_dtype, code, _ = _DTYPES[self.dtype]
        if len(self.values) != _product(self.shape):
            raise ValueError(f"{len(self.values)} values do not fit shape {self.shape}")
        values = _cast(self.values, self.dtype)
        if self.dtype in _INT_RANGES:
            lo, hi = _INT_RANGES[self.dtype]
            bad = next((v for v in values if not lo <= v <= hi), None)
            if bad is not None:
                raise ValueError(f"{bad} does not fit a {self.dtype} tensor")
        if self.dtype == "boolean":
            data = bytes(1 if v else 0 for v in values)
        elif self.dtype == "uint8":
            data = bytes(values)
        else:
            data = struct.pack(f"<{len(values)}{code}", *values)
        return wit.Tensor(wit_dtype, [int(d) for d in self.shape], data)

    # -- shape

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return len(self.values)

    def __len__(self):
        if not self.shape:
            raise TypeError("a 0-d tensor has no length")
        return self.shape[0]

    def reshape(self, *shape):
        """The same values in a new shape; one dimension may be -1 (inferred)."""
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = tuple(shape[0])
        shape = [int(d) for d in shape]
        if shape.count(-1) > 1:
            raise ValueError("only one dimension may be -1")
        if -1 in shape:
            known = _product(d for d in shape if d != -1)
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape {self.size} values into {tuple(shape)}")
            shape[shape.index(-1)] = self.size // known
        return Tensor(self.values, tuple(shape), self.dtype)

    def flatten(self):
        return Tensor(self.values, (self.size,), self.dtype)

    def tolist(self):
        """The values as nested lists, following the shape."""

        def nest(values, shape):
            if len(shape) <= 1:
                return list(values)
            step = _product(shape[1:])
            return [nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]

        if not self.shape:
            return self.values[0]
        return nest(self.values, self.shape)

    def rows(self):
        """The tensor as a list of rows along the first axis, each a flat list
        (a 1-D tensor gives one-element rows)."""
        if not self.shape:
            return [list(self.values)]
        n = self.shape[0]
        width = _product(self.shape[1:])
        return [self.values[i * width : (i + 1) * width] for i in range(n)]

    def transpose(self):
        """A 2-D tensor's transpose."""
        if self.ndim != 2:
            raise ValueError(f"transpose needs a 2-D tensor, not shape {self.shape}")
        r, c = self.shape
        v = self.values
        return Tensor([v[i * c + j] for j in range(c) for i in range(r)], (c, r), self.dtype)

    @property
    def T(self):  # noqa: N802 - numpy's name
        return self.transpose()

    def astype(self, dtype):
        return Tensor(self.values, self.shape, dtype)

    def map(self, fn, dtype=None):
        """Applies `fn` to every element."""
        out = [fn(v) for v in self.values]
        return Tensor(out, self.shape, dtype or ("float64" if any(isinstance(v, float) for v in out) else None))

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) > self.ndim:
            raise IndexError(f"{len(index)} indices for a {self.ndim}-D tensor")
        offset, stride = 0, self.size
        for axis, i in enumerate(index):
            dim = self.shape[axis]
            if i < 0:
                i += dim
            if not 0 <= i < dim:
                raise IndexError(f"index {i} out of range for axis {axis} of size {dim}")
            stride //= dim
            offset += i * stride
        rest = self.shape[len(index) :]
        if not rest:
            return self.values[offset]
        return Tensor(self.values[offset : offset + stride], rest, self.dtype)

    def __iter__(self):
        if self.ndim == 1:
            return iter(list(self.values))
        return (self[i] for i in range(len(self)))

    def __eq__(self, other):
        return (
            isinstance(other, Tensor)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.values == other.values
        )

    __hash__ = None

    def __repr__(self):
        return f"Tensor({self.tolist()!r}, shape={self.shape}, dtype={self.dtype!r})"

    # -- arithmetic

    def _binary(self, other, op, reverse=False, divide=False):
        if isinstance(other, Tensor):
            a, b = (other, self) if reverse else (self, other)
            if a.shape == b.shape:
                shape, xs, ys = a.shape, a.values, b.values
            elif a.shape[len(a.shape) - len(b.shape) :] == b.shape and b.size:
                shape, xs, ys = a.shape, a.values, b.values * (a.size // b.size)
            elif b.shape[len(b.shape) - len(a.shape) :] == a.shape and a.size:
                shape, xs, ys = b.shape, a.values * (b.size // a.size), b.values
            else:
                raise ValueError(f"shapes {a.shape} and {b.shape} do not broadcast")
            floats = {a.dtype, b.dtype} & {"float32", "float64"}
            dtype = "float32" if floats == {"float32"} else "float64" if floats or divide else "int64"
            return Tensor([op(x, y) for x, y in zip(xs, ys)], shape, dtype)
        if isinstance(other, (int, float)):
            if self.dtype in ("float32", "float64"):
                dtype = self.dtype
            elif divide or isinstance(other, float):
                dtype = "float64"
            else:
                dtype = "int64"
            if reverse:
                out = [op(other, x) for x in self.values]
            else:
                out = [op(x, other) for x in self.values]
            return Tensor(out, self.shape, dtype)
        return NotImplemented

    def __add__(self, other):
        return self._binary(other, lambda x, y: x + y)

    def __radd__(self, other):
        return self._binary(other, lambda x, y: x + y, reverse=True)

    def __sub__(self, other):
        return self._binary(other, lambda x, y: x - y)

    def __rsub__(self, other):
        return self._binary(other, lambda x, y: x - y, reverse=True)

    def __mul__(self, other):
        return self._binary(other, lambda x, y: x * y)

    def __rmul__(self, other):
        return self._binary(other, lambda x, y: x * y, reverse=True)

    def __truediv__(self, other):
        return self._binary(other, _divide, divide=True)

    def __rtruediv__(self, other):
        return self._binary(other, _divide, reverse=True, divide=True)

    def __pow__(self, other):
        return self._binary(other, lambda x, y: x**y)

    def __neg__(self):
        return Tensor([-v for v in self.values], self.shape, "int64" if self.dtype == "boolean" else self.dtype)

    def __abs__(self):
        return Tensor([abs(v) for v in self.values], self.shape, self.dtype)

    def __matmul__(self, other):
        """Matrix product of 2-D tensors, or of a 2-D tensor and a vector."""
        if not isinstance(other, Tensor):
            return NotImplemented
        a = self if self.ndim == 2 else self.reshape(1, -1)
        b = other if other.ndim == 2 else other.reshape(-1, 1)
        (n, k), (k2, m) = a.shape, b.shape
        if k != k2:
            raise ValueError(f"matmul of shapes {self.shape} and {other.shape}")
        av, bv = a.values, b.values
        cols = [[bv[r * m + j] for r in range(k)] for j in range(m)]
        out = []
        for i in range(n):
            row = av[i * k : (i + 1) * k]
            out.extend(math.fsum(x * y for x, y in zip(row, col)) for col in cols)
        shape = (n, m)
        if other.ndim == 1:
            shape = (n,)
        if self.ndim == 1:
            shape = shape[1:] if other.ndim == 2 else ()
        return Tensor(out, shape, "float64")

    # -- reductions

    def _reduce(self, fn, axis, dtype):
        if axis is None:
            return fn(self.values)
        if not self.shape:
            raise ValueError("a 0-d tensor has no axes")
        if axis < 0:
            axis += self.ndim
        if not 0 <= axis < self.ndim:
            raise ValueError(f"axis {axis} out of range for shape {self.shape}")
        outer = _product(self.shape[:axis])
        n = self.shape[axis]
        inner = _product(self.shape[axis + 1 :])
        v = self.values
        out = [
            fn([v[(o * n + k) * inner + i] for k in range(n)]) for o in range(outer) for i in range(inner)
        ]
        return Tensor(out, self.shape[:axis] + self.shape[axis + 1 :], dtype)

    def sum(self, axis=None):
        floats = self.dtype in ("float32", "float64")
        return self._reduce(math.fsum if floats else sum, axis, "float64" if floats else "int64")

    def mean(self, axis=None):
        return self._reduce(lambda xs: math.fsum(xs) / len(xs) if xs else math.nan, axis, "float64")

    def min(self, axis=None):
        return self._reduce(_empty_guard(min), axis, self.dtype)

    def max(self, axis=None):
        return self._reduce(_empty_guard(max), axis, self.dtype)

    def argmax(self, axis=None):
        return self._reduce(_empty_guard(lambda xs: max(range(len(xs)), key=xs.__getitem__)), axis, "int64")

    def argmin(self, axis=None):
        return self._reduce(_empty_guard(lambda xs: min(range(len(xs)), key=xs.__getitem__)), axis, "int64")


def _divide(x, y):
    if y == 0:
        if x == 0 or x != x:
            return math.nan
        return math.copysign(math.inf, x) * (math.copysign(1.0, y))
    return x / y


def _empty_guard(fn):
    def inner(xs):
        if not xs:
            raise ValueError("reduction over an empty tensor")
        return fn(xs)

    return inner


# ---------------------------------------------------------------------------
# Tables

_COLUMN_TYPES = ("float64", "int64", "text", "boolean")
_MISSING_FILL = {"float64": 0.0, "int64": 0, "text": "", "boolean": False}


def _infer_type(values):
    present = [v for v in values if v is not None]
    if not present:
        return "float64"
    if all(isinstance(v, bool) for v in present):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float64"
    if all(isinstance(v, str) for v in present):
        return "text"
    kinds = sorted({type(v).__name__ for v in present})
    raise ValueError(f"cannot infer a column type from a mix of {', '.join(kinds)}")


def _coerce(name, ctype, values):
    """Values converted to the column type; None stays None (missing)."""
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            if ctype == "float64":
                if isinstance(v, str):
                    raise TypeError
                out.append(float(v))
            elif ctype == "int64":
                if isinstance(v, float) and not v.is_integer():
                    raise TypeError
                if isinstance(v, str):
                    raise TypeError
                x = int(v)
                if not -(2**63) <= x < 2**63:
                    raise TypeError
                out.append(x)
            elif ctype == "text":
                if not isinstance(v, str):
                    raise TypeError
                out.append(v)
            else:
                if not isinstance(v, (bool, int)) or v not in (0, 1):
                    raise TypeError
                out.append(bool(v))
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"column `{name}` is {ctype} but row {i} holds {v!r}") from None
    return out


class Table:
    """Named, typed columns of equal length, in order. Each column is a Python
    list with ``None`` for a missing value; its type is one of ``float64``,
    ``int64``, ``text``, ``boolean``.

    ``Table({"x": [1.0, None], "name": ["a", "b"]})`` infers the types;
    ``table["x"]`` is the column's list, ``table.add("y", values)`` adds or
    replaces a column (a replaced column keeps its type unless given one).
    """

    def __init__(self, columns=None, types=None):
        self._data = {}
        self._types = {}
        types = dict(types or {})
        if isinstance(columns, Table):
            types = {**columns.types, **types}
            columns = {n: columns[n] for n in columns.columns}
        for name, values in (columns or {}).items():
            self.add(name, values, types.get(name))

    # -- contract conversion

    @classmethod
    def from_wit(cls, table):
        """Decodes the contract's table, checking column lengths and masks."""
        out = cls()
        rows = None
        for col in table.columns:
            d = col.data
            if isinstance(d, wit.ColumnData_Float64):
                ctype = "float64"
            elif isinstance(d, wit.ColumnData_Int64):
                ctype = "int64"
            elif isinstance(d, wit.ColumnData_Text):
                ctype = "text"
            else:
                ctype = "boolean"
            values = list(d.value)
            if rows is None:
                rows = len(values)
            if len(values) != rows:
                raise KilnError.invalid_input(f"column `{col.name}` has {len(values)} rows, the table has {rows}")
            if col.valid is not None:
                if len(col.valid) != rows:
                    raise KilnError.invalid_input(
                        f"column `{col.name}` has {len(col.valid)} validity flags for {rows} rows"
                    )
                values = [v if ok else None for v, ok in zip(values, col.valid)]
            if col.name in out._data:
                raise KilnError.invalid_input(f"column `{col.name}` appears twice")
            out._data[col.name] = values
            out._types[col.name] = ctype
        return out

    def to_wit(self):
        """Encodes the table as the contract's table (missing values masked)."""
        columns = []
        for name, values in self._data.items():
            ctype = self._types[name]
            values = _coerce(name, ctype, values)
            fill = _MISSING_FILL[ctype]
            valid = None
            if any(v is None for v in values):
                valid = [v is not None for v in values]
                values = [fill if v is None else v for v in values]
            if ctype == "float64":
                data = wit.ColumnData_Float64(values)
            elif ctype == "int64":
                data = wit.ColumnData_Int64(values)
            elif ctype == "text":
                data = wit.ColumnData_Text(values)
            else:
                data = wit.ColumnData_Boolean(values)
            columns.append(wit.Column(name, data, valid))
        return wit.Table(columns)

    @classmethod
    def from_rows(cls, rows, types=None):
        """A table from a list of dicts (keys in first-seen order; absent keys are missing)."""
        names = []
        for row in rows:
            for k in row:
                if k not in names:
                    names.append(k)
        return cls({n: [row.get(n) for row in rows] for n in names}, types)

    # -- shape and access

    @property
    def columns(self):
        """The column names, in order."""
        return list(self._data)

    @property
    def types(self):
        """Each column's type, by name."""
        return dict(self._types)

    def type(self, name):
        self._need(name)
        return self._types[name]

    @property
    def num_rows(self):
        for values in self._data.values():
            return len(values)
        return 0

    def __len__(self):
        return self.num_rows

    def __contains__(self, name):
        return name in self._data

    def __iter__(self):
        return iter(self.columns)

    def _need(self, name):
        if name not in self._data:
            have = ", ".join(f"`{c}`" for c in self._data) or "no columns"
            raise KilnError.invalid_input(f"no column `{name}`; the table has {have}")

    def __getitem__(self, name):
        """The column's values (the table's own list: copy it before changing it)."""
        self._need(name)
        return self._data[name]

    def __setitem__(self, name, values):
        self.add(name, values)

    def get(self, name, default=None):
        return self._data.get(name, default)

    def numeric_columns(self, exclude=()):
        """The names of the float64 and int64 columns, minus `exclude`."""
        return [n for n, t in self._types.items() if t in ("float64", "int64") and n not in exclude]

    def text_columns(self, exclude=()):
        return [n for n, t in self._types.items() if t == "text" and n not in exclude]

    def missing_count(self, name):
        return sum(1 for v in self[name] if v is None)

    def floats(self, name, allow_missing=True):
        """A numeric or boolean column as floats (None for missing).

        A text column, or a missing value when ``allow_missing`` is false, is an
        ``invalid-input`` error naming the column."""
        ctype = self.type(name)
        if ctype == "text":
            raise KilnError.invalid_input(f"column `{name}` is text; a number is needed")
        values = self._data[name]
        if not allow_missing:
            missing = sum(1 for v in values if v is None)
            if missing:
                raise KilnError.invalid_input(f"column `{name}` has {missing} missing values; impute them first")
        return [None if v is None else float(v) for v in values]

    # -- building

    def add(self, name, values, type=None):  # noqa: A002 - the natural name
        """Adds a column, or replaces one in place. Returns the table.

        The type is `type` if given, else the replaced column's type, else inferred
        from the values (bools: boolean, ints: int64, numbers: float64, strings: text)."""
        name = str(name)
        values = list(values)
        if self._data and name not in self._data and len(values) != self.num_rows:
            raise ValueError(f"column `{name}` has {len(values)} rows, the table has {self.num_rows}")
        if name in self._data and len(self._data) > 1 and len(values) != self.num_rows:
            raise ValueError(f"column `{name}` has {len(values)} rows, the table has {self.num_rows}")
        if type is None:
            type = self._types.get(name) or _infer_type(values)  # noqa: A001
        if type not in _COLUMN_TYPES:
            raise ValueError(f"column type `{type}` must be one of {', '.join(_COLUMN_TYPES)}")
        self._data[name] = _coerce(name, type, values)
        self._types[name] = type
        return self

    def select(self, names):
        """A new table of the named columns, in that order."""
        if isinstance(names, str):
            names = [names]
        for n in names:
            self._need(n)
        return Table({n: list(self._data[n]) for n in names}, {n: self._types[n] for n in names})

    def drop(self, names):
        """A new table without the named columns (names not present are ignored)."""
        if isinstance(names, str):
            names = [names]
        keep = [n for n in self._data if n not in set(names)]
        return self.select(keep)

    def rename(self, mapping):
        """A new table with columns renamed by `mapping` (old name -> new name)."""
        for n in mapping:
            self._need(n)
        return Table(
            {mapping.get(n, n): list(v) for n, v in self._data.items()},
            {mapping.get(n, n): t for n, t in self._types.items()},
        )

    def take(self, indices):
        """A new table of the rows at `indices`, in that order."""
        indices = list(indices)
        return Table({n: [v[i] for i in indices] for n, v in self._data.items()}, self._types)

    def head(self, n=5):
        return self.take(range(min(n, self.num_rows)))

    def rows(self):
        """The rows as dicts, column name to value (None for missing)."""
        names = self.columns
        cols = [self._data[n] for n in names]
        return [dict(zip(names, vals)) for vals in zip(*cols)]

    def to_dict(self):
        return {n: list(v) for n, v in self._data.items()}

    def __eq__(self, other):
        return isinstance(other, Table) and self._data == other._data and self._types == other._types

    __hash__ = None

    def __repr__(self):
        cols = ", ".join(f"{n}: {self._types[n]}" for n in self._data)
        return f"Table({self.num_rows} rows; {cols})"


# ---------------------------------------------------------------------------
# Values


class Json:
    """Marks an output as a JSON value: ``{"out": kiln.Json("a string")}``
    (dicts and lists are JSON already; this is for a str, number or bool)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


_KIND_NAMES = {
    wit.Value_Tensor: "tensor",
    wit.Value_Table: "table",
    wit.Value_Scalar: "scalar",
    wit.Value_Text: "text",
    wit.Value_Bytes: "bytes",
    wit.Value_Json: "json",
}


def _kind_name(value):
    return _KIND_NAMES.get(type(value), type(value).__name__)


def _dumps(name, obj):
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"output `{name}` is not JSON: {e}") from None


def to_value(value, name="value"):
    """A Python value as the contract's value: Table -> table, Tensor -> tensor,
    int/float -> scalar, str -> text, bytes -> bytes, dict/list/bool/Json -> json."""
    if isinstance(value, Table):
        return wit.Value_Table(value.to_wit())
    if isinstance(value, Tensor):
        return wit.Value_Tensor(value.to_wit())
    if isinstance(value, Json):
        return wit.Value_Json(_dumps(name, value.value))
    if isinstance(value, bool):
        return wit.Value_Json("true" if value else "false")
    if isinstance(value, (int, float)):
        return wit.Value_Scalar(float(value))
    if isinstance(value, str):
        return wit.Value_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return wit.Value_Bytes(bytes(value))
    if isinstance(value, (dict, list, tuple)):
        return wit.Value_Json(_dumps(name, value))
    if type(value) in _KIND_NAMES:
        return value
    if isinstance(value, wit.Table):
        return wit.Value_Table(value)
    if isinstance(value, wit.Tensor):
        return wit.Value_Tensor(value)
    raise TypeError(f"output `{name}`: cannot send a {type(value).__name__} (use a Table, Tensor, number, str, bytes, dict or list)")


def _outputs(result):
    """A plugin's outputs (a dict, or pairs) as the contract's named values."""
    if result is None:
        return []
    pairs = result.items() if isinstance(result, dict) else result
    out = []
    for pair in pairs:
        name, value = pair
        if value is None:
            continue
        out.append(wit.NamedValue(str(name), to_value(value, name)))
    return out


class Inputs:
    """The named inputs a plugin was called with, converted on access.

    ``inputs.table("train")`` returns a :class:`Table`; a missing input or one
    of another kind is an ``invalid-input`` error naming the port.
    """

    def __init__(self, values):
        self._values = {}
        for nv in values or []:
            self._values[nv.name] = nv.value

    @property
    def names(self):
        return list(self._values)

    def __contains__(self, name):
        return name in self._values

    def __len__(self):
        return len(self._values)

    def raw(self, name):
        """The contract's value as passed, or None."""
        return self._values.get(name)

    def kind(self, name):
        """The kind of the input (``table``, ``tensor``...), or None if absent."""
        v = self._values.get(name)
        return None if v is None else _kind_name(v)

    def _take(self, name, *kinds):
        if name not in self._values:
            raise KilnError.invalid_input(f"missing input `{name}`")
        v = self._values[name]
        if _kind_name(v) not in kinds:
            raise KilnError.invalid_input(f"input `{name}` must be a {' or '.join(kinds)}, got a {_kind_name(v)}")
        return v.value

    def table(self, name):
        try:
            return Table.from_wit(self._take(name, "table"))
        except KilnError as e:
            if e.message.startswith(("missing input", "input `")):
                raise
            raise KilnError.invalid_input(f"input `{name}`: {e.message}") from None

    def tensor(self, name):
        try:
            return Tensor.from_wit(self._take(name, "tensor"))
        except KilnError as e:
            if e.message.startswith(("missing input", "input `")):
                raise
            raise KilnError.invalid_input(f"input `{name}`: {e.message}") from None

    def scalar(self, name):
        return float(self._take(name, "scalar"))

    def text(self, name):
        """A text input (a JSON input is accepted as its text)."""
        return self._take(name, "text", "json")

    def bytes(self, name):
        return bytes(self._take(name, "bytes"))

    def json(self, name):
        """A JSON input, parsed (a text input holding JSON is accepted too)."""
        text = self._take(name, "json", "text")
        try:
            return json.loads(text)
        except ValueError as e:
            raise KilnError.invalid_input(f"input `{name}` is not valid JSON: {e}") from None

    def get(self, name, default=None):
        """The input converted by its own kind (table -> Table, json -> parsed...),
        or `default` if absent."""
        if name not in self._values:
            return default
        return getattr(self, _kind_name(self._values[name]))(name)

    def __getitem__(self, name):
        if name not in self._values:
            raise KilnError.invalid_input(f"missing input `{name}`")
        return self.get(name)

    def optional(self, name, kind=None):
        """Like ``inputs.<kind>(name)``, but None when the input is absent.
        Without a kind, the value is converted by its own kind."""
        if name not in self._values:
            return None
        if kind is None:
            return self.get(name)
        if kind not in ("table", "tensor", "scalar", "text", "bytes", "json"):
            raise ValueError(f"kind `{kind}` must be table, tensor, scalar, text, bytes or json")
        return getattr(self, kind)(name)


def _config_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class Config:
    """The config a plugin was called with: text keys and values, parsed on demand.

    A key not given falls back to the call's `default`, then to the default the
    descriptor declares. A value that does not parse is an ``invalid-config``
    error naming the key.
    """

    def __init__(self, pairs, defaults=None):
        self._pairs = {}
        for k, v in pairs or []:
            self._pairs[k] = v  # the last one wins
        self._defaults = dict(defaults or {})

    def __contains__(self, key):
        return key in self._pairs

    def keys(self):
        return list(self._pairs)

    def items(self):
        return list(self._pairs.items())

    def get(self, key, default=None):
        """The text value of `key`, or `default`, or the declared default, or None."""
        if key in self._pairs:
            return self._pairs[key]
        if default is not None:
            return _config_text(default)
        return self._defaults.get(key)

    def require(self, key):
        value = self.get(key)
        if value is None:
            raise KilnError.invalid_config(f"missing config key `{key}`")
        return value

    def _parse(self, key, default, parse, what):
        text = self.get(key, default)
        if text is None:
            return None
        try:
            return parse(text.strip())
        except (ValueError, OverflowError):
            raise KilnError.invalid_config(f"config key `{key}` = `{text}` is not {what}") from None

    def float(self, key, default=None):
        def parse(s):
            x = float(s)
            if math.isnan(x):
                raise ValueError
            return x

        return self._parse(key, default, parse, "a number")

    def int(self, key, default=None):
        def parse(s):
            x = float(s) if any(c in s for c in ".eE") else int(s)
            if isinstance(x, float):
                if not x.is_integer():
                    raise ValueError
                x = int(x)
            return x

        return self._parse(key, default, parse, "an integer")

    def bool(self, key, default=None):
        def parse(s):
            s = s.lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise ValueError

        return self._parse(key, default, parse, "true or false")

    def list(self, key, default=None):
        """A comma-separated list, trimmed, empty items skipped; [] when not set."""
        text = self.get(key, default)
        if text is None:
            return []
        return [s.strip() for s in text.split(",") if s.strip()]

    def choice(self, key, options, default=None):
        """The value of `key`, which must be one of `options`."""
        text = self.get(key, default)
        if text is None:
            return None
        text = text.strip()
        if text not in options:
            raise KilnError.invalid_config(f"config key `{key}` = `{text}` must be one of {', '.join(options)}")
        return text


# ---------------------------------------------------------------------------
# Descriptors, metadata, checks, events

_VALUE_KINDS = {
    "tensor": wit.ValueKind.TENSOR,
    "table": wit.ValueKind.TABLE,
    "scalar": wit.ValueKind.SCALAR,
    "text": wit.ValueKind.TEXT,
    "bytes": wit.ValueKind.BYTES,
    "json": wit.ValueKind.JSON,
    "any": wit.ValueKind.ANY,
}


def _port(name, kind, description, optional):
    if kind not in _VALUE_KINDS:
        raise ValueError(f"port `{name}`: kind `{kind}` must be one of {', '.join(_VALUE_KINDS)}")
    return {"name": str(name), "kind": kind, "optional": bool(optional), "description": str(description)}


def _wit_port(p):
    return wit.Port(p["name"], _VALUE_KINDS[p["kind"]], p["optional"], p["description"])


class Descriptor:
    """What a plugin says about itself: its name, description, ports and config keys.

    ``Descriptor("scale", "Scales a tensor").input("x", "tensor", "the tensor")
    .output("y", "tensor", "x scaled").config("factor", 2, "the multiplier")``
    """

    def __init__(self, name, description=""):
        self.name = str(name)
        self.description = str(description)
        self.inputs = []
        self.outputs = []
        self.config_keys = []

    def input(self, name, kind, description="", optional=False):
        self.inputs.append(_port(name, kind, description, optional))
        return self

    def optional_input(self, name, kind, description=""):
        return self.input(name, kind, description, optional=True)

    def output(self, name, kind, description="", optional=False):
        self.outputs.append(_port(name, kind, description, optional))
        return self

    def config(self, name, default=None, description="", required=False):
        """Declares a config key; `default` (any value, sent as text) is used when it is not given."""
        self.config_keys.append(
            {
                "name": str(name),
                "required": bool(required),
                "default": None if default is None else _config_text(default),
                "description": str(description),
            }
        )
        return self

    def required_config(self, name, description=""):
        return self.config(name, None, description, required=True)

    def defaults(self):
        return {k["name"]: k["default"] for k in self.config_keys if k["default"] is not None}

    def to_wit(self):
        return wit.Descriptor(
            self.name,
            self.description,
            [_wit_port(p) for p in self.inputs],
            [_wit_port(p) for p in self.outputs],
            [wit.ConfigKey(k["name"], k["required"], k["default"], k["description"]) for k in self.config_keys],
        )

    def check_config(self, config):
        """Refuses a call missing a required config key."""
        for k in self.config_keys:
            if k["required"] and k["name"] not in config:
                raise KilnError.invalid_config(f"missing config key `{k['name']}` ({k['description']})")

    def check_call(self, inputs, config):
        """Refuses a call missing a required input or config key, or with an input of the wrong kind."""
        for p in self.inputs:
            kind = inputs.kind(p["name"])
            if kind is None:
                if not p["optional"]:
                    raise KilnError.invalid_input(f"missing input `{p['name']}` ({p['description'] or p['kind']})")
            elif p["kind"] != "any" and kind != p["kind"]:
                raise KilnError.invalid_input(f"input `{p['name']}` must be a {p['kind']}, got a {kind}")
        self.check_config(config)


class Metadata:
    """A loaded model's signature and free-form facts:
    ``Metadata().input("features", "table").output("predictions", "tensor").property("k", "v")``."""

    def __init__(self):
        self.inputs = []
        self.outputs = []
        self.properties = []

    def input(self, name, kind, description="", optional=False):
        self.inputs.append(_port(name, kind, description, optional))
        return self

    def output(self, name, kind, description="", optional=False):
        self.outputs.append(_port(name, kind, description, optional))
        return self

    def property(self, key, value):
        self.properties.append((str(key), _config_text(value)))
        return self

    def to_wit(self):
        return wit.ModelMetadata(
            [_wit_port(p) for p in self.inputs], [_wit_port(p) for p in self.outputs], list(self.properties)
        )


_SEVERITIES = {"info": wit.Severity.INFO, "warning": wit.Severity.WARNING, "error": wit.Severity.ERROR}


def check(name, passed, severity="error", observed=None, detail=""):
    """One check of a validator's report. `severity` is info, warning or error;
    `observed` is the figure looked at (a non-finite figure is sent as none)."""
    if isinstance(severity, wit.Severity):
        sev = severity
    elif severity in _SEVERITIES:
        sev = _SEVERITIES[severity]
    else:
        raise ValueError(f"severity `{severity}` must be info, warning or error")
    if observed is not None:
        observed = float(observed)
        if not math.isfinite(observed):
            observed = None
    return wit.Check(str(name), bool(passed), sev, observed, str(detail))


class Event:
    """One event of a run, as a tracker receives it.

    ``kind`` is run-started, param, metric, tag, artifact or run-finished.
    run-started carries the workflow in ``value``, run-finished the status;
    param and tag carry ``key`` and ``value``; metric carries ``key``, ``value``,
    ``step`` and ``timestamp_ms``; artifact carries its name in ``value``.
    """

    __slots__ = ("kind", "key", "value", "step", "timestamp_ms")

    def __init__(self, kind, key=None, value=None, step=None, timestamp_ms=None):
        self.kind, self.key, self.value, self.step, self.timestamp_ms = kind, key, value, step, timestamp_ms

    @classmethod
    def from_wit(cls, e):
        if isinstance(e, wit.Event_Metric):
            m = e.value
            return cls("metric", m.key, m.value, m.step, m.timestamp_ms)
        if isinstance(e, wit.Event_Param):
            return cls("param", e.value[0], e.value[1])
        if isinstance(e, wit.Event_Tag):
            return cls("tag", e.value[0], e.value[1])
        if isinstance(e, wit.Event_RunStarted):
            return cls("run-started", value=e.value)
        if isinstance(e, wit.Event_RunFinished):
            return cls("run-finished", value=e.value)
        return cls("artifact", value=e.value)

    def to_dict(self):
        return {s: getattr(self, s) for s in self.__slots__ if getattr(self, s) is not None}

    def __eq__(self, other):
        return isinstance(other, Event) and self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self):
        return "Event(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


# ---------------------------------------------------------------------------
# Roles


def _check_descriptor(cls):
    d = cls.__dict__.get("descriptor")
    if d is not None and not isinstance(d, Descriptor):
        raise TypeError(f"{cls.__name__}.descriptor must be a kiln.Descriptor")


class _Role:
    #: The plugin's :class:`Descriptor`.
    descriptor = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _check_descriptor(cls)

    def _descriptor(self):
        if self.descriptor is None:
            return Descriptor(type(self).__name__.lower(), "")
        return self.descriptor

    def describe(self):
        """The contract's `describe` (implemented from :attr:`descriptor`)."""
        return self._descriptor().to_wit()

    def _call(self, inputs, config):
        d = self._descriptor()
        inputs, config = Inputs(inputs), Config(config, d.defaults())
        d.check_call(inputs, config)
        return inputs, config


class Step(_Role):
    """A pipeline step. Implement ``process(self, inputs, config)`` returning a dict
    of outputs (values are converted: Table, Tensor, number, str, bytes, dict/list)."""

    def process(self, inputs, config):
        raise KilnError.unsupported(f"{type(self).__name__}.process is not implemented")

    def run(self, inputs, config):
        """The contract's `run`: do not override, implement `process`."""

        def go():
            return _outputs(self.process(*self._call(inputs, config)))

        return _guard(go)


class Validator(_Role):
    """A validator. Implement ``process(self, inputs, config)`` returning a list of
    ``kiln.check(...)``. A failed check is a result; raise a KilnError only when the
    checks cannot run."""

    def process(self, inputs, config):
        raise KilnError.unsupported(f"{type(self).__name__}.process is not implemented")

    def validate(self, inputs, config):
        """The contract's `validate`: do not override, implement `process`."""

        def go():
            checks = self.process(*self._call(inputs, config))
            out = []
            for c in checks or []:
                if isinstance(c, dict):
                    c = check(**c)
                if not isinstance(c, wit.Check):
                    raise TypeError(f"a validator returns kiln.check(...) results, not {type(c).__name__}")
                out.append(c)
            return out

        return _guard(go)


class Tracker(_Role):
    """A tracker. Implement ``process(self, run_id, events, config)``; events are
    :class:`Event` objects. Nothing is returned."""

    def process(self, run_id, events, config):
        raise KilnError.unsupported(f"{type(self).__name__}.process is not implemented")

    def on_events(self, run_id, events, config):
        """The contract's `on-events`: do not override, implement `process`."""

        def go():
            d = self._descriptor()
            cfg = Config(config, d.defaults())
            d.check_config(cfg)
            self.process(run_id, [Event.from_wit(e) for e in events], cfg)

        _guard(go)


class Model:
    """A loaded model, returned by ``ModelRunner.load``. Implement ``predict(self,
    inputs)`` returning a dict of outputs, and ``metadata(self)`` returning a
    :class:`Metadata` (the default declares no ports)."""

    def metadata(self):
        return Metadata()

    def predict(self, inputs):
        raise KilnError.unsupported(f"{type(self).__name__}.predict is not implemented")


_RUNNER = {"class": None, "instance": None}


class _ModelResource:
    """The contract's `model` resource, wrapping the plugin's :class:`Model`."""

    def __init__(self, model):
        self._model = model

    @classmethod
    def load(cls, artifact, config):
        def go():
            runner_cls = _RUNNER["class"]
            if runner_cls is None:
                raise KilnError.internal("no kiln.ModelRunner subclass was defined")
            if _RUNNER["instance"] is None:
                _RUNNER["instance"] = runner_cls()
            runner = _RUNNER["instance"]
            cfg = Config(config, runner._descriptor().defaults())
            runner._descriptor().check_config(cfg)
            model = runner.load(bytes(artifact), cfg)
            if model is None:
                raise KilnError.internal(f"{runner_cls.__name__}.load returned None, not a model")
            return cls(model)

        return _guard(go)

    def metadata(self):
        try:
            meta = self._model.metadata()
            return (meta if isinstance(meta, Metadata) else Metadata()).to_wit()
        except BaseException as e:  # noqa: BLE001 - metadata cannot fail in the contract
            err = _internal_from(e)
            _log(_wit_log.Level.ERROR, f"model metadata failed: {err.message}")
            return wit.ModelMetadata([], [], [("error", err.message)])

    def predict(self, inputs):
        def go():
            return _outputs(self._model.predict(Inputs(inputs)))

        return _guard(go)


class ModelRunner(_Role):
    """A model runner. Implement ``load(self, artifact, config)`` returning a
    :class:`Model` built from the artifact bytes."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _RUNNER["class"] = cls
        # componentize-py looks the exported resource up as `model_runner.Model`.
        module = sys.modules.get("model_runner")
        if module is None:
            module = _pytypes.ModuleType("model_runner", "The model resource, provided by kiln.py")
            sys.modules["model_runner"] = module
        module.Model = _ModelResource

    def load(self, artifact, config):
        raise KilnError.unsupported(f"{type(self).__name__}.load is not implemented")
