/**
 * kiln.js: the Kiln SDK for plugins written in JavaScript.
 *
 * A Kiln plugin is a WebAssembly component implementing one role of the contract
 * `kiln:plugin@0.1.0`: a step, a validator, a model runner or a tracker. `kiln plugin
 * build` puts this file beside your `app.js` and builds both with ComponentizeJS. Export
 * one role from app.js, made by its helper:
 *
 *     import * as kiln from './kiln.js';
 *
 *     export const step = kiln.step({
 *       describe: kiln.descriptor('scale', 'Multiplies every element of a tensor')
 *         .input('x', 'tensor', 'the tensor to scale')
 *         .output('y', 'tensor', 'x times the factor')
 *         .config('factor', '2', 'the multiplier'),
 *       run(inputs, config) {
 *         const factor = config.number('factor');
 *         const x = inputs.tensor('x');
 *         kiln.tracking.logMetric('factor', factor);
 *         return { y: x.map((v) => Number(v) * factor, 'float64') };
 *       },
 *     });
 *
 * The role helpers (`step`, `validator`, `modelRunner`, `tracker`) convert the contract's
 * values to the classes here (Tensor, Table, Inputs, Config...) and back, fill in the
 * config defaults the descriptor declares, and turn every exception into the contract's
 * error: a KilnError keeps its kind, anything else is an `internal` error naming where it
 * was thrown. A plugin made with them never traps. The descriptor is checked when the
 * module loads, so a malformed one fails the build, not a run.
 *
 * How ComponentizeJS 0.23 maps the contract's types, for code that uses them directly:
 * records are objects with camelCase fields (`timestampMs`); enums are their WIT names as
 * strings ('float64', 'invalid-input'); variants are `{tag, val}`; option<T> is T or
 * undefined (null is also accepted on the way out); tuples are arrays; list<u8>, list<f64>,
 * list<s64> and list<u64> arrive as Uint8Array, Float64Array, BigInt64Array and
 * BigUint64Array (on the way out a typed array is copied byte for byte, so it must be of
 * exactly that type), u64 is a BigInt; list<bool> and list<string> are arrays. An
 * exported function's result<T, error> is T when it returns, and the error when it throws
 * something with an own `payload` property (a KilnError has one) or a plain object; an
 * Error without `payload` traps. A resource is exported as a class whose static methods
 * and prototype methods ComponentizeJS calls (see `modelRunner`).
 */

import { log as hostLog } from 'kiln:plugin/log@0.1.0';
import { logMetric, logParam, setTag } from 'kiln:plugin/tracking@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

const ERROR_KINDS = ['invalid-input', 'invalid-config', 'unsupported', 'internal'];

/** A failure reported on purpose; the role helpers send it as the contract's `error`. */
export class KilnError extends Error {
  /**
   * @param {'invalid-input'|'invalid-config'|'unsupported'|'internal'} kind
   * @param {string} message
   */
  constructor(kind, message) {
    super(String(message));
    this.name = 'KilnError';
    this.kind = ERROR_KINDS.includes(kind) ? kind : 'internal';
    // ComponentizeJS sends an exception's own `payload` as the function's WIT error.
    Object.defineProperty(this, 'payload', {
      value: { kind: this.kind, message: this.message },
    });
  }
  /** The inputs are missing, of the wrong kind, or hold bad data. */
  static invalidInput(message) {
    return new KilnError('invalid-input', message);
  }
  /** A config key is missing or holds a bad value. */
  static invalidConfig(message) {
    return new KilnError('invalid-config', message);
  }
  /** The plugin does not support what was asked. */
  static unsupported(message) {
    return new KilnError('unsupported', message);
  }
  /** Something went wrong inside the plugin. */
  static internal(message) {
    return new KilnError('internal', message);
  }
}

export const invalidInput = KilnError.invalidInput;
export const invalidConfig = KilnError.invalidConfig;
export const unsupported = KilnError.unsupported;
export const internal = KilnError.internal;

/** Any exception as the contract's error record `{kind, message}`. */
export function toWitError(e) {
  if (e instanceof KilnError) return { kind: e.kind, message: e.message };
  if (e && typeof e === 'object' && ERROR_KINDS.includes(e.kind) && typeof e.message === 'string') {
    return { kind: e.kind, message: e.message };
  }
  if (e instanceof Error) {
    const frame = typeof e.stack === 'string' ? e.stack.split('\n').find((l) => l.trim()) : '';
    const where = frame ? ` (at ${frame.trim()})` : '';
    return { kind: 'internal', message: `${e.name || 'Error'}: ${e.message}${where}` };
  }
  return { kind: 'internal', message: `uncaught ${typeof e}: ${show(e)}` };
}

/** A value as text for messages: strings as they are, the rest as JSON when possible. */
function show(v) {
  if (typeof v === 'string') return v;
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  try {
    const s = JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x));
    if (s !== undefined) return s;
  } catch {
    // fall through
  }
  return String(v);
}

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}

// ---------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------

const DTYPES = {
  float32: { Array: Float32Array, size: 4 },
  float64: { Array: Float64Array, size: 8 },
  int32: { Array: Int32Array, size: 4 },
  int64: { Array: BigInt64Array, size: 8 },
  uint8: { Array: Uint8Array, size: 1 },
  boolean: { Array: Uint8Array, size: 1 },
};

function dtypeOf(data) {
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array) return 'uint8';
  return undefined;
}

/** One element converted for storage in a `dtype` array. */
function element(dtype, v) {
  if (dtype === 'int64') return typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)));
  if (dtype === 'boolean') return v ? 1 : 0;
  return Number(v);
}

function convert(values, dtype) {
  const { Array: Ctor } = DTYPES[dtype];
  const out = new Ctor(values.length);
  for (let i = 0; i < values.length; i++) out[i] = element(dtype, values[i]);
  return out;
}

/** The element count of `shape`, checked to be exact. */
function count(shape, fail) {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw fail(`shape [${shape.join(', ')}] has too many elements`);
  }
  return n;
}

function checkShape(shape, fail) {
  const out = Array.from(shape, Number);
  for (const d of out) {
    if (!Number.isSafeInteger(d) || d < 0) throw fail(`bad tensor shape [${Array.from(shape).join(', ')}]`);
  }
  return out;
}

/** Nested arrays as a flat list and their shape; they must be rectangular. */
function flatten(nested) {
  const shape = [];
  let level = nested;
  while (Array.isArray(level) || (ArrayBuffer.isView(level) && !(level instanceof DataView))) {
    shape.push(level.length);
    if (level.length === 0 || ArrayBuffer.isView(level)) break;
    level = level[0];
  }
  const flat = [];
  const walk = (node, depth) => {
    if (depth === shape.length) {
      flat.push(node);
      return;
    }
    if (!(Array.isArray(node) || ArrayBuffer.isView(node)) || node.length !== shape[depth]) {
      throw KilnError.internal(`ragged nested array: every item at depth ${depth} must have ${shape[depth]} elements`);
    }
    for (let i = 0; i < node.length; i++) walk(node[i], depth + 1);
  };
  walk(nested, 0);
  return { flat, shape };
}

/**
 * A dense, row-major tensor over a typed array: Float32Array, Float64Array, Int32Array,
 * BigInt64Array (int64) or Uint8Array (uint8, and boolean as 0/1).
 */
export class Tensor {
  /**
   * @param {Float32Array|Float64Array|Int32Array|BigInt64Array|Uint8Array} data
   * @param {number[]} [shape] the data's length when omitted (a 1-D tensor)
   * @param {string} [dtype] taken from the array's type when omitted (Uint8Array: uint8)
   */
  constructor(data, shape, dtype) {
    dtype ??= dtypeOf(data);
    const info = DTYPES[dtype];
    if (!info) {
      throw KilnError.internal(`tensor dtype \`${dtype}\` is not one of ${Object.keys(DTYPES).join(', ')}`);
    }
    if (!(data instanceof info.Array)) {
      throw KilnError.internal(`a ${dtype} tensor holds a ${info.Array.name}, not a ${typeName(data)}`);
    }
    this.data = data;
    this.dtype = dtype;
    this.shape = checkShape(shape ?? [data.length], KilnError.internal);
    this.#check(KilnError.internal);
  }

  #check(fail) {
    const n = count(this.shape, fail);
    if (n !== this.data.length) {
      throw fail(`a tensor of shape [${this.shape.join(', ')}] has ${n} elements; its data has ${this.data.length}`);
    }
  }

  /**
   * A tensor from an array, a typed array or nested arrays (whose nesting gives the shape).
   * The dtype defaults to the typed array's, else int64 for BigInts, boolean for booleans,
   * float64 for anything else.
   */
  static from(values, shape, dtype) {
    if (ArrayBuffer.isView(values) && !(values instanceof DataView)) {
      const own = dtypeOf(values);
      dtype ??= own ?? 'float64';
      const data = own === dtype || (own === 'uint8' && dtype === 'boolean') ? values : convert(values, dtype);
      return new Tensor(data, shape, dtype);
    }
    if (!Array.isArray(values)) {
      throw KilnError.internal(`Tensor.from takes an array or a typed array, not a ${typeName(values)}`);
    }
    const { flat, shape: nestedShape } = flatten(values);
    const first = flat[0];
    dtype ??= typeof first === 'bigint' ? 'int64' : typeof first === 'boolean' ? 'boolean' : 'float64';
    if (!DTYPES[dtype]) {
      throw KilnError.internal(`tensor dtype \`${dtype}\` is not one of ${Object.keys(DTYPES).join(', ')}`);
    }
    return new Tensor(convert(flat, dtype), shape ?? nestedShape, dtype);
  }

  /** A tensor of zeros. */
  static zeros(shape, dtype = 'float64') {
    const info = DTYPES[dtype];
    if (!info) throw KilnError.internal(`tensor dtype \`${dtype}\` is not one of ${Object.keys(DTYPES).join(', ')}`);
    return new Tensor(new info.Array(count(checkShape(shape, KilnError.internal), KilnError.internal)), shape, dtype);
  }

  /** The contract's tensor record (`{dtype, shape, data}`, data little-endian) as a Tensor. */
  static fromWit(t) {
    const info = DTYPES[t?.dtype];
    if (!info) throw KilnError.invalidInput(`unknown tensor dtype \`${t?.dtype}\``);
    const shape = checkShape(t.shape ?? [], KilnError.invalidInput);
    const n = count(shape, KilnError.invalidInput);
    const bytes = t.data instanceof Uint8Array ? t.data : Uint8Array.from(t.data ?? []);
    if (bytes.length !== n * info.size) {
      throw KilnError.invalidInput(
        `a tensor of shape [${shape.join(', ')}] and dtype ${t.dtype} needs ${n * info.size} bytes, has ${bytes.length}`,
      );
    }
    // WebAssembly is little-endian, as the contract's tensors are: a view reads them as is.
    const aligned = bytes.byteOffset % info.size === 0 ? bytes : bytes.slice();
    return new Tensor(new info.Array(aligned.buffer, aligned.byteOffset, n), shape, t.dtype);
  }

  /** The contract's tensor record. */
  toWit() {
    this.#check(KilnError.internal);
    const d = this.data;
    return {
      dtype: this.dtype,
      shape: BigUint64Array.from(this.shape, (x) => BigInt(x)),
      data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
    };
  }

  /** The number of dimensions. */
  get ndim() {
    return this.shape.length;
  }

  /** The number of elements. */
  get size() {
    return this.data.length;
  }

  /** The flat position of an element. */
  offset(...index) {
    if (index.length === 1 && Array.isArray(index[0])) index = index[0];
    if (index.length !== this.shape.length) {
      throw new RangeError(`a ${this.shape.length}-D tensor takes ${this.shape.length} indices, got ${index.length}`);
    }
    let at = 0;
    for (let axis = 0; axis < index.length; axis++) {
      const i = index[axis];
      if (!Number.isInteger(i) || i < 0 || i >= this.shape[axis]) {
        throw new RangeError(`index ${i} is out of bounds for axis ${axis} of size ${this.shape[axis]}`);
      }
      at = at * this.shape[axis] + i;
    }
    return at;
  }

  /** The element at `(i, j, ...)`: a number, a BigInt (int64) or a boolean. */
  get(...index) {
    const v = this.data[this.offset(...index)];
    return this.dtype === 'boolean' ? v !== 0 : v;
  }

  /** Sets the element at `(i, j, ..., value)`. */
  set(...indexAndValue) {
    const value = indexAndValue.pop();
    this.data[this.offset(...indexAndValue)] = element(this.dtype, value);
    return this;
  }

  /** Views of the data along the first axis: one typed array per row (no copies). */
  rows() {
    if (this.shape.length === 0) throw new RangeError('a 0-D tensor has no rows');
    const n = this.shape[0];
    const width = n === 0 ? 0 : this.data.length / n;
    return Array.from({ length: n }, (_, i) => this.data.subarray(i * width, (i + 1) * width));
  }

  /** A new tensor of the same shape: `fn(value, flatIndex)` for each element. */
  map(fn, dtype = this.dtype) {
    const info = DTYPES[dtype];
    if (!info) throw KilnError.internal(`tensor dtype \`${dtype}\` is not one of ${Object.keys(DTYPES).join(', ')}`);
    const out = new info.Array(this.data.length);
    const bool = this.dtype === 'boolean';
    for (let i = 0; i < out.length; i++) {
      const v = this.data[i];
      out[i] = element(dtype, fn(bool ? v !== 0 : v, i));
    }
    return new Tensor(out, this.shape.slice(), dtype);
  }

  /** The same elements in another dtype. */
  astype(dtype) {
    return this.map((v) => v, dtype);
  }

  /** The same data with another shape; one dimension may be -1 (inferred). */
  reshape(...shape) {
    if (shape.length === 1 && Array.isArray(shape[0])) shape = shape[0];
    const free = shape.indexOf(-1);
    if (free >= 0) {
      const known = shape.reduce((p, d, i) => (i === free ? p : p * d), 1);
      shape = shape.slice();
      shape[free] = known === 0 ? 0 : this.data.length / known;
    }
    return new Tensor(this.data, shape, this.dtype);
  }

  /** The elements as a new Float64Array (int64 through Number, boolean as 0/1). */
  toFloat64() {
    return this.dtype === 'int64' ? Float64Array.from(this.data, Number) : Float64Array.from(this.data);
  }

  /** The elements as nested arrays. */
  toArray() {
    const bool = this.dtype === 'boolean';
    const build = (axis, start) => {
      if (axis === this.shape.length) return bool ? this.data[start] !== 0 : this.data[start];
      const stride = this.shape.slice(axis + 1).reduce((p, d) => p * d, 1);
      return Array.from({ length: this.shape[axis] }, (_, i) => build(axis + 1, start + i * stride));
    };
    return build(0, 0);
  }
}

// ---------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------

const COLUMN_TYPES = ['float64', 'int64', 'text', 'boolean'];

function columnTypeOf(values) {
  if (values instanceof BigInt64Array) return 'int64';
  if (ArrayBuffer.isView(values)) return 'float64';
  for (const v of values) {
    if (v === null || v === undefined) continue;
    if (typeof v === 'bigint') return 'int64';
    if (typeof v === 'string') return 'text';
    if (typeof v === 'boolean') return 'boolean';
    return 'float64';
  }
  return 'float64';
}

/** Values stored as a column type wants them: Float64Array, BigInt64Array, string[], boolean[]. */
function columnValues(type, values) {
  switch (type) {
    case 'float64':
      return values instanceof Float64Array ? values : Float64Array.from(values, (v) => Number(v ?? 0));
    case 'int64':
      return values instanceof BigInt64Array
        ? values
        : BigInt64Array.from(values, (v) => (typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v ?? 0)))));
    case 'text':
      return Array.from(values, (v) => (typeof v === 'string' ? v : v == null ? '' : String(v)));
    case 'boolean':
      return Array.from(values, (v) => Boolean(v));
    default:
      throw KilnError.internal(`column type \`${type}\` is not one of ${COLUMN_TYPES.join(', ')}`);
  }
}

/**
 * A named column: `values` is a Float64Array (float64), BigInt64Array (int64), string[]
 * (text) or boolean[] (boolean); `valid` is null when no value is missing, else one
 * boolean per row (false: missing).
 */
export class Column {
  constructor(name, type, values, valid = null) {
    if (!COLUMN_TYPES.includes(type)) {
      throw KilnError.internal(`column type \`${type}\` is not one of ${COLUMN_TYPES.join(', ')}`);
    }
    this.name = String(name);
    this.type = type;
    this.values = columnValues(type, values);
    this.valid = valid == null ? null : Array.from(valid, Boolean);
  }

  /**
   * A column from any array: null and undefined entries are missing. The type is
   * inferred (BigInt: int64, string: text, boolean: boolean, else float64) unless given.
   * @param {{type?: string, valid?: boolean[]}} [options]
   */
  static from(name, values, options = {}) {
    if (values instanceof Column) return new Column(name, values.type, values.values, values.valid);
    if (!(Array.isArray(values) || ArrayBuffer.isView(values))) {
      throw KilnError.internal(`column \`${name}\` takes an array or a typed array, not a ${typeName(values)}`);
    }
    const type = options.type ?? columnTypeOf(values);
    let valid = options.valid ? Array.from(options.valid, Boolean) : null;
    if (Array.isArray(values) && values.some((v) => v == null)) {
      valid = values.map((v, i) => v != null && (valid ? valid[i] : true));
    }
    if (valid && valid.every(Boolean)) valid = null;
    return new Column(name, type, values, valid);
  }

  /** The contract's column record as a Column. */
  static fromWit(c) {
    const tag = c?.data?.tag;
    if (!COLUMN_TYPES.includes(tag)) throw KilnError.invalidInput(`column \`${c?.name}\` has an unknown type \`${tag}\``);
    return new Column(c.name, tag, c.data.val, c.valid ?? null);
  }

  /** The contract's column record. */
  toWit() {
    const values = columnValues(this.type, this.values);
    if (this.valid && this.valid.length !== values.length) {
      throw KilnError.internal(`column \`${this.name}\` has ${values.length} values but ${this.valid.length} validity flags`);
    }
    return {
      name: this.name,
      data: { tag: this.type, val: values },
      valid: this.valid ? Array.from(this.valid, Boolean) : undefined,
    };
  }

  /** The number of rows. */
  get length() {
    return this.values.length;
  }

  /** Whether row `i` holds a value. */
  isValid(i) {
    return this.valid === null || this.valid[i] === true;
  }

  /** The value at row `i`, or null when it is missing. */
  at(i) {
    return this.isValid(i) ? this.values[i] : null;
  }

  /** The number of missing values. */
  get missingCount() {
    return this.valid === null ? 0 : this.valid.reduce((n, ok) => n + (ok ? 0 : 1), 0);
  }

  /** Whether the column holds numbers (float64, int64 or boolean). */
  get isNumeric() {
    return this.type !== 'text';
  }

  /** The values as a new Float64Array, missing ones NaN; a text column is an invalid-input error. */
  toFloat64() {
    if (this.type === 'text') {
      throw KilnError.invalidInput(`column \`${this.name}\` is text, a number was expected`);
    }
    const out = Float64Array.from(this.values, (v) => Number(v));
    if (this.valid) this.valid.forEach((ok, i) => ok || (out[i] = NaN));
    return out;
  }

  /** The values as an array, missing ones null. */
  toArray() {
    return Array.from({ length: this.length }, (_, i) => this.at(i));
  }

  /** A copy of the rows at `indices`, in that order. */
  take(indices) {
    const pick = (src) => indices.map((i) => src[i]);
    const values = ArrayBuffer.isView(this.values)
      ? this.values.constructor.from(indices, (i) => this.values[i])
      : pick(this.values);
    return new Column(this.name, this.type, values, this.valid ? pick(this.valid) : null);
  }
}

/** Named, typed columns of equal length. */
export class Table {
  /** @param {Column[]} [columns] */
  constructor(columns = []) {
    this.columns = Array.from(columns);
  }

  /** A table from `{name: values}` (or a Map): see Column.from for the values. */
  static from(columns) {
    const t = new Table();
    const entries = columns instanceof Map ? columns.entries() : Object.entries(columns);
    for (const [name, values] of entries) t.add(name, values);
    return t;
  }

  /** A table from row objects; the columns are `names`, or every key in order of appearance. */
  static fromRows(rows, names) {
    if (!names) {
      const seen = new Set();
      for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
      names = [...seen];
    }
    const t = new Table();
    for (const name of names) t.add(name, rows.map((r) => r[name] ?? null));
    return t;
  }

  /** The contract's table record as a Table, checked. */
  static fromWit(t) {
    const table = new Table((t?.columns ?? []).map((c) => Column.fromWit(c)));
    table.check();
    return table;
  }

  /** The contract's table record. */
  toWit() {
    this.check(KilnError.internal);
    return { columns: this.columns.map((c) => c.toWit()) };
  }

  /** Throws when a column's length (or validity mask) differs from the first column's. */
  check(fail = KilnError.invalidInput) {
    const rows = this.numRows;
    for (const c of this.columns) {
      if (c.length !== rows || (c.valid && c.valid.length !== rows)) {
        throw fail(`column \`${c.name}\` has ${c.length} rows, the table has ${rows}`);
      }
    }
  }

  /** The column names, in order. */
  get columnNames() {
    return this.columns.map((c) => c.name);
  }

  /** The number of rows (that of the first column). */
  get numRows() {
    return this.columns.length ? this.columns[0].length : 0;
  }

  /** The number of columns. */
  get numColumns() {
    return this.columns.length;
  }

  /** Whether there is a column `name`. */
  has(name) {
    return this.columns.some((c) => c.name === name);
  }

  /** The Column `name`; a missing one is an invalid-input error naming the columns there are. */
  column(name) {
    const c = this.columns.find((c) => c.name === name);
    if (!c) {
      const names = this.columnNames.map((n) => `\`${n}\``).join(', ');
      throw KilnError.invalidInput(`no column \`${name}\`; the table has ${names || 'no columns'}`);
    }
    return c;
  }

  /** The values of column `name` (a typed array or an array; see `column(name).valid`). */
  get(name) {
    return this.column(name).values;
  }

  /** Column `name` as a Float64Array with NaN where values are missing. */
  numeric(name) {
    return this.column(name).toFloat64();
  }

  /**
   * Adds column `name` (or replaces it, in place): a Column, or values as Column.from takes.
   * @returns {Table} this table
   */
  add(name, values, options) {
    const col = values instanceof Column ? new Column(name, values.type, values.values, values.valid) : Column.from(name, values, options);
    const at = this.columns.findIndex((c) => c.name === col.name);
    const others = at >= 0 ? this.columns.length - 1 : this.columns.length;
    if (others > 0) {
      const rows = this.columns[at === 0 ? 1 : 0].length;
      if (col.length !== rows) {
        throw KilnError.internal(`column \`${col.name}\` has ${col.length} rows, the table has ${rows}`);
      }
    }
    if (at >= 0) this.columns[at] = col;
    else this.columns.push(col);
    return this;
  }

  /** A table of the named columns, in that order. */
  select(...names) {
    return new Table(names.flat().map((n) => this.column(n)));
  }

  /** A table without the named columns. */
  drop(...names) {
    const gone = new Set(names.flat());
    return new Table(this.columns.filter((c) => !gone.has(c.name)));
  }

  /** The rows as objects, missing values null. */
  rows() {
    const rows = [];
    for (let i = 0; i < this.numRows; i++) {
      const row = {};
      for (const c of this.columns) row[c.name] = c.at(i);
      rows.push(row);
    }
    return rows;
  }

  /** A copy of the rows at `indices`, in that order. */
  takeRows(indices) {
    return new Table(this.columns.map((c) => c.take(indices)));
  }

  /**
   * The named numeric columns (by default every numeric one except `exclude`) as a
   * row-major float64 tensor of shape [rows, columns]. Missing values are refused.
   */
  toTensor(names, exclude = []) {
    names ??= this.columns.filter((c) => c.isNumeric && !exclude.includes(c.name)).map((c) => c.name);
    if (names.length === 0) throw KilnError.invalidInput('no numeric columns');
    const cols = names.map((n) => {
      const c = this.column(n);
      if (c.missingCount > 0) {
        throw KilnError.invalidInput(`column \`${n}\` has ${c.missingCount} missing values; impute them first`);
      }
      return c.toFloat64();
    });
    const rows = this.numRows;
    const out = new Float64Array(rows * cols.length);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols.length; j++) out[r * cols.length + j] = cols[j][r];
    return new Tensor(out, [rows, cols.length], 'float64');
  }
}

// ---------------------------------------------------------------------------------------
// Values, inputs, outputs, config
// ---------------------------------------------------------------------------------------

const VALUE_TAGS = ['tensor', 'table', 'scalar', 'text', 'bytes', 'json'];

/** A value to send as the contract's `json` kind. */
export class Json {
  constructor(value) {
    this.value = value;
  }
}

/** Marks a value to be sent as JSON (`kiln.json({...})`). */
export function json(value) {
  return new Json(value);
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function isWitValue(v) {
  return isPlainObject(v) && VALUE_TAGS.includes(v.tag) && 'val' in v && Object.keys(v).length === 2;
}

function stringify(value) {
  const text = JSON.stringify(value);
  if (text === undefined) throw KilnError.internal(`a ${typeName(value)} has no JSON form`);
  return text;
}

/**
 * A JavaScript value as the contract's `value` variant: Tensor, Table, number (scalar),
 * string (text), Uint8Array or ArrayBuffer (bytes), Json or a plain object, array or
 * boolean (json), another typed array (a 1-D tensor), or a `{tag, val}` already.
 */
export function toWitValue(value) {
  if (value instanceof Tensor) return { tag: 'tensor', val: value.toWit() };
  if (value instanceof Table) return { tag: 'table', val: value.toWit() };
  if (value instanceof Json) return { tag: 'json', val: stringify(value.value) };
  switch (typeof value) {
    case 'number':
      return { tag: 'scalar', val: value };
    case 'bigint':
      return { tag: 'scalar', val: Number(value) };
    case 'string':
      return { tag: 'text', val: value };
    case 'boolean':
      return { tag: 'json', val: stringify(value) };
  }
  if (value instanceof Uint8Array) return { tag: 'bytes', val: value };
  if (value instanceof ArrayBuffer) return { tag: 'bytes', val: new Uint8Array(value) };
  if (ArrayBuffer.isView(value) && dtypeOf(value)) return { tag: 'tensor', val: Tensor.from(value).toWit() };
  if (isWitValue(value)) return toWitValue(fromWitValue(value));
  if (Array.isArray(value) || isPlainObject(value)) return { tag: 'json', val: stringify(value) };
  if (value === undefined || value === null) throw KilnError.internal(`the value is ${value}`);
  throw KilnError.internal(
    `a ${typeName(value)} cannot be sent: send a Tensor, Table, number, string, Uint8Array, kiln.json(...) or a plain object`,
  );
}

/**
 * The contract's `value` variant as JavaScript: Tensor, Table, number, string, Uint8Array,
 * or Json (its `value` the parsed document).
 */
export function fromWitValue(v) {
  switch (v?.tag) {
    case 'tensor':
      return Tensor.fromWit(v.val);
    case 'table':
      return Table.fromWit(v.val);
    case 'scalar':
      return Number(v.val);
    case 'text':
      return String(v.val);
    case 'bytes':
      return v.val instanceof Uint8Array ? v.val : Uint8Array.from(v.val);
    case 'json':
      return new Json(parseJson(String(v.val), 'a json value'));
    default:
      throw KilnError.invalidInput(`unknown value kind \`${v?.tag}\``);
  }
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw KilnError.invalidInput(`${what} is not valid JSON: ${e.message}`);
  }
}

const A = { tensor: 'a tensor', table: 'a table', scalar: 'a scalar', text: 'text', bytes: 'bytes', json: 'JSON' };

/** The named inputs a plugin was called with, taken by name and kind. */
export class Inputs {
  #values;

  /** @param {{name: string, value: {tag: string, val: any}}[]} values the contract's named values */
  constructor(values = []) {
    this.#values = Array.from(values);
  }

  /** The input names, in order. */
  names() {
    return this.#values.map((v) => v.name);
  }

  /** Whether input `name` was given. */
  has(name) {
    return this.#values.some((v) => v.name === name);
  }

  /** The kind of input `name` ('tensor', 'table'...), or undefined. */
  kind(name) {
    return this.raw(name)?.tag;
  }

  /** Input `name` as the contract's `{tag, val}`, or undefined. */
  raw(name) {
    return this.#values.find((v) => v.name === name)?.value;
  }

  /** Input `name` converted (see fromWitValue), or undefined when it was not given. */
  get(name) {
    const v = this.raw(name);
    return v === undefined ? undefined : this.#convert(name, v, (x) => fromWitValue(x));
  }

  #take(name, kinds, options) {
    const v = this.raw(name);
    if (v === undefined) {
      if (options?.optional) return undefined;
      throw KilnError.invalidInput(`missing input \`${name}\``);
    }
    if (!kinds.includes(v.tag)) {
      throw KilnError.invalidInput(`input \`${name}\` must be ${A[kinds[0]]}, got ${A[v.tag] ?? v.tag}`);
    }
    return v;
  }

  #convert(name, v, fn) {
    try {
      return fn(v);
    } catch (e) {
      if (e instanceof KilnError) throw new KilnError(e.kind, `input \`${name}\`: ${e.message}`);
      throw e;
    }
  }

  /** Tensor input `name`; `{optional: true}` gives null when it is absent. */
  tensor(name, options) {
    const v = this.#take(name, ['tensor'], options);
    return v ? this.#convert(name, v, (x) => Tensor.fromWit(x.val)) : null;
  }

  /** Table input `name`, checked; `{optional: true}` gives null when it is absent. */
  table(name, options) {
    const v = this.#take(name, ['table'], options);
    return v ? this.#convert(name, v, (x) => Table.fromWit(x.val)) : null;
  }

  /** Scalar input `name` as a number; `{optional: true}` gives null when it is absent. */
  scalar(name, options) {
    const v = this.#take(name, ['scalar'], options);
    return v ? Number(v.val) : null;
  }

  /** Text input `name` (a json input gives its text); `{optional: true}` gives null when absent. */
  text(name, options) {
    const v = this.#take(name, ['text', 'json'], options);
    return v ? String(v.val) : null;
  }

  /** Bytes input `name` as a Uint8Array; `{optional: true}` gives null when it is absent. */
  bytes(name, options) {
    const v = this.#take(name, ['bytes'], options);
    return v ? v.val : null;
  }

  /** JSON input `name` (json or text), parsed; `{optional: true}` gives null when it is absent. */
  json(name, options) {
    const v = this.#take(name, ['json', 'text'], options);
    return v ? parseJson(String(v.val), `input \`${name}\``) : null;
  }
}

/** A plugin's named outputs, in order. A plain object `{name: value}` works as well. */
export class Outputs {
  #values = [];

  /** Adds (or replaces) output `name`; see toWitValue for what a value may be. */
  set(name, value) {
    const at = this.#values.findIndex(([n]) => n === name);
    if (at >= 0) this.#values[at] = [name, value];
    else this.#values.push([name, value]);
    return this;
  }

  entries() {
    return this.#values.slice();
  }
}

/** Outputs (an Outputs, a Map, a plain object or [name, value] pairs) as named values. */
export function toWitOutputs(outputs) {
  if (outputs === undefined || outputs === null) return [];
  let entries;
  if (outputs instanceof Outputs) entries = outputs.entries();
  else if (outputs instanceof Map) entries = [...outputs.entries()];
  else if (Array.isArray(outputs)) entries = outputs;
  else if (isPlainObject(outputs)) entries = Object.entries(outputs);
  else {
    throw KilnError.internal(`outputs must be a plain object {name: value}, a Map or kiln.Outputs, not a ${typeName(outputs)}`);
  }
  return entries.map((entry) => {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string') {
      throw KilnError.internal('outputs given as an array must be [name, value] pairs');
    }
    const [name, value] = entry;
    try {
      return { name, value: toWitValue(value) };
    } catch (e) {
      throw KilnError.internal(`output \`${name}\`: ${e instanceof KilnError ? e.message : toWitError(e).message}`);
    }
  });
}

const TRUE = ['true', 'yes', 'on', '1'];
const FALSE = ['false', 'no', 'off', '0'];

/**
 * The config a plugin was called with: text keys and values. A key the call does not set
 * reads as the default the descriptor declares for it.
 */
export class Config {
  #pairs;
  #keys;

  /**
   * @param {[string, string][]} pairs the contract's config, in order
   * @param {{name: string, default?: string}[]} [keys] the declared keys, for their defaults
   */
  constructor(pairs = [], keys = []) {
    this.#pairs = Array.from(pairs, ([k, v]) => [String(k), String(v)]);
    this.#keys = keys;
  }

  /** The value of `key` (the last one when it repeats), else its declared default, else undefined. */
  get(key) {
    for (let i = this.#pairs.length - 1; i >= 0; i--) {
      if (this.#pairs[i][0] === key) return this.#pairs[i][1];
    }
    return this.#keys.find((k) => k.name === key)?.default ?? undefined;
  }

  /** Whether the call set `key` (defaults do not count). */
  has(key) {
    return this.#pairs.some(([k]) => k === key);
  }

  /** The value of `key`; a missing key is an invalid-config error. */
  require(key) {
    const v = this.get(key);
    if (v === undefined) throw KilnError.invalidConfig(`missing config key \`${key}\``);
    return v;
  }

  #value(key, fallback) {
    const v = this.get(key);
    if (v !== undefined) return v.trim();
    if (fallback === undefined) throw KilnError.invalidConfig(`missing config key \`${key}\``);
    return undefined;
  }

  /** `key` as a number; `fallback` when unset (without one, unset is an error). */
  number(key, fallback) {
    const v = this.#value(key, fallback);
    if (v === undefined) return fallback;
    const x = Number(v);
    if (v === '' || Number.isNaN(x)) throw KilnError.invalidConfig(`config key \`${key}\` = \`${v}\` is not a number`);
    return x;
  }

  /** `key` as an integer; `fallback` when unset (without one, unset is an error). */
  int(key, fallback) {
    const x = this.number(key, fallback);
    if (x !== fallback && !Number.isSafeInteger(x)) {
      throw KilnError.invalidConfig(`config key \`${key}\` = \`${this.get(key)}\` is not an integer`);
    }
    return x;
  }

  /** `key` as a boolean (true/false, yes/no, on/off, 1/0); `fallback` when unset. */
  bool(key, fallback) {
    const v = this.#value(key, fallback);
    if (v === undefined) return fallback;
    const lower = v.toLowerCase();
    if (TRUE.includes(lower)) return true;
    if (FALSE.includes(lower)) return false;
    throw KilnError.invalidConfig(`config key \`${key}\` = \`${v}\` is not true or false`);
  }

  /** `key` as one of `choices`; `fallback` when unset (without one, unset is an error). */
  choice(key, choices, fallback) {
    const v = this.#value(key, fallback);
    if (v === undefined) return fallback;
    if (!choices.includes(v)) {
      throw KilnError.invalidConfig(`config key \`${key}\` = \`${v}\` must be one of ${choices.join(', ')}`);
    }
    return v;
  }

  /** `key` as a comma-separated list (trimmed, empty items dropped); [] when unset. */
  list(key) {
    const v = this.get(key);
    return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  }

  /** The pairs the call gave, in order. */
  pairs() {
    return this.#pairs.map(([k, v]) => [k, v]);
  }
}

// ---------------------------------------------------------------------------------------
// Descriptors, model metadata, checks
// ---------------------------------------------------------------------------------------

const VALUE_KINDS = ['tensor', 'table', 'scalar', 'text', 'bytes', 'json', 'any'];
const SEVERITIES = ['info', 'warning', 'error'];

function port(p, where) {
  if (typeof p?.name !== 'string' || p.name === '') throw KilnError.internal(`${where}: a port needs a name`);
  if (!VALUE_KINDS.includes(p.kind)) {
    throw KilnError.internal(`${where}: port \`${p.name}\` has kind \`${p.kind}\`, not one of ${VALUE_KINDS.join(', ')}`);
  }
  return { name: p.name, kind: p.kind, optional: Boolean(p.optional), description: String(p.description ?? '') };
}

function unique(items, what) {
  const seen = new Set();
  for (const { name } of items) {
    if (seen.has(name)) throw KilnError.internal(`${what} \`${name}\` is declared twice`);
    seen.add(name);
  }
  return items;
}

function configKey(k) {
  if (typeof k?.name !== 'string' || k.name === '') throw KilnError.internal('a config key needs a name');
  return {
    name: k.name,
    required: Boolean(k.required),
    default: k.default == null ? undefined : String(k.default),
    description: String(k.description ?? ''),
  };
}

/** Builds a descriptor: `kiln.descriptor(name, description).input(...).output(...).config(...)`. */
export class DescriptorBuilder {
  #d;
  constructor(name, description = '') {
    this.#d = { name, description, inputs: [], outputs: [], config: [] };
  }
  /** Declares a required input of `kind` (tensor, table, scalar, text, bytes, json, any). */
  input(name, kind, description = '') {
    this.#d.inputs.push({ name, kind, optional: false, description });
    return this;
  }
  /** Declares an input the plugin can do without. */
  optionalInput(name, kind, description = '') {
    this.#d.inputs.push({ name, kind, optional: true, description });
    return this;
  }
  /** Declares an output. */
  output(name, kind, description = '') {
    this.#d.outputs.push({ name, kind, optional: false, description });
    return this;
  }
  /** Declares a config key and its default (null or undefined: none). */
  config(name, defaultValue, description = '') {
    this.#d.config.push({ name, required: false, default: defaultValue, description });
    return this;
  }
  /** Declares a config key the plugin cannot run without. */
  requiredConfig(name, description = '') {
    this.#d.config.push({ name, required: true, default: undefined, description });
    return this;
  }
  /** The contract's descriptor record. */
  build() {
    return normalizeDescriptor(this.#d);
  }
}

/** Starts a descriptor. */
export function descriptor(name, description = '') {
  return new DescriptorBuilder(name, description);
}

/** A descriptor (builder, plain object or function returning either) as the contract's record, checked. */
export function normalizeDescriptor(d) {
  if (typeof d === 'function') d = d();
  if (d instanceof DescriptorBuilder) return d.build();
  if (!isPlainObject(d)) throw KilnError.internal(`describe must be kiln.descriptor(...) or a plain object, not a ${typeName(d)}`);
  if (typeof d.name !== 'string' || d.name === '') throw KilnError.internal('a descriptor needs a name');
  const name = d.name;
  return {
    name,
    description: String(d.description ?? ''),
    inputs: unique((d.inputs ?? []).map((p) => port(p, `descriptor \`${name}\`, inputs`)), 'input'),
    outputs: unique((d.outputs ?? []).map((p) => port(p, `descriptor \`${name}\`, outputs`)), 'output'),
    config: unique((d.config ?? []).map(configKey), 'config key'),
  };
}

/** Builds a loaded model's metadata: `kiln.metadata().input(...).output(...).property(k, v)`. */
export class MetadataBuilder {
  #m = { inputs: [], outputs: [], properties: [] };
  input(name, kind, description = '') {
    this.#m.inputs.push({ name, kind, optional: false, description });
    return this;
  }
  optionalInput(name, kind, description = '') {
    this.#m.inputs.push({ name, kind, optional: true, description });
    return this;
  }
  output(name, kind, description = '') {
    this.#m.outputs.push({ name, kind, optional: false, description });
    return this;
  }
  property(key, value) {
    this.#m.properties.push([String(key), String(value)]);
    return this;
  }
  build() {
    return normalizeMetadata(this.#m);
  }
}

/** Starts a model's metadata. */
export function metadata() {
  return new MetadataBuilder();
}

/** Metadata (builder or plain object; properties as pairs or an object) as the contract's record. */
export function normalizeMetadata(m) {
  if (m instanceof MetadataBuilder) return m.build();
  if (m == null) m = {};
  if (!isPlainObject(m)) throw KilnError.internal(`model metadata must be kiln.metadata() or a plain object, not a ${typeName(m)}`);
  const props = Array.isArray(m.properties) ? m.properties : Object.entries(m.properties ?? {});
  return {
    inputs: (m.inputs ?? []).map((p) => port(p, 'model inputs')),
    outputs: (m.outputs ?? []).map((p) => port(p, 'model outputs')),
    properties: props.map(([k, v]) => [String(k), String(v)]),
  };
}

/**
 * One check of a validator's report.
 * @param {string} name
 * @param {boolean} passed
 * @param {{severity?: 'info'|'warning'|'error', observed?: number, detail?: string}} [options]
 */
export function check(name, passed, options = {}) {
  return normalizeCheck({ name, passed, ...options });
}

function normalizeCheck(c) {
  if (!isPlainObject(c)) throw KilnError.internal(`a check must be kiln.check(...) or a plain object, not a ${typeName(c)}`);
  const severity = c.severity ?? 'error';
  if (!SEVERITIES.includes(severity)) {
    throw KilnError.internal(`check \`${c.name}\`: severity \`${severity}\` is not one of ${SEVERITIES.join(', ')}`);
  }
  const observed = c.observed == null ? undefined : Number(c.observed);
  return { name: String(c.name), passed: Boolean(c.passed), severity, observed, detail: String(c.detail ?? '') };
}

// ---------------------------------------------------------------------------------------
// Logging and tracking
// ---------------------------------------------------------------------------------------

/** The role this module's plugin plays, set by its role helper. */
let role = null;

function emit(level, parts) {
  hostLog(level, parts.map(show).join(' '));
}

/** Levelled logging into the host's log, tagged with the plugin's name; arguments are joined by spaces. */
export const log = {
  trace: (...parts) => emit('trace', parts),
  debug: (...parts) => emit('debug', parts),
  info: (...parts) => emit('info', parts),
  warn: (...parts) => emit('warn', parts),
  error: (...parts) => emit('error', parts),
};

function trackable() {
  if (role === 'tracker' || role === 'model-runner') {
    throw KilnError.unsupported(`tracking is for steps and validators; a ${role} cannot track`);
  }
}

/** Tracking of the current run, for steps and validators (elsewhere: an unsupported error). */
export const tracking = {
  /** Records a metric point; `step` is a non-negative integer (0 by default). */
  logMetric(key, value, step = 0) {
    trackable();
    const s = typeof step === 'bigint' ? step : BigInt(Math.max(0, Math.trunc(Number(step) || 0)));
    logMetric(String(key), Number(value), BigInt.asUintN(64, s));
  },
  /** Records a parameter of the run. */
  logParam(key, value) {
    trackable();
    logParam(String(key), String(value));
  },
  /** Sets a tag on the run. */
  setTag(key, value) {
    trackable();
    setTag(String(key), String(value));
  },
};

// ---------------------------------------------------------------------------------------
// Files in granted directories (WASI filesystem)
// ---------------------------------------------------------------------------------------

const DISPOSE = Symbol.dispose || Symbol.for('dispose');
const CHUNK = 1 << 20;
let granted = null;

function dispose(resource) {
  try {
    resource?.[DISPOSE]?.();
  } catch {
    // already gone
  }
}

/** `a//b/./c/` as `a/b/c`, keeping a leading `/`; empty means `.`. */
function cleanPath(p) {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (p.startsWith('/')) return `/${parts.join('/')}`;
  return parts.length ? parts.join('/') : '.';
}

/** The directories granted to this plugin, by the names it sees them at. */
export function grantedDirs() {
  granted ??= getDirectories().map(([dir, name]) => ({ dir, name, key: cleanPath(name) }));
  return granted.map((g) => g.name);
}

/** The granted directory `path` is in (the longest match) and the path inside it. */
function locate(path) {
  grantedDirs();
  const want = cleanPath(String(path));
  let best = null;
  for (const g of granted) {
    let rest = null;
    if (want === g.key) rest = '.';
    else if (g.key === '/' && want.startsWith('/')) rest = want.slice(1);
    else if (g.key === '.' && !want.startsWith('/')) rest = want;
    else if (want.startsWith(`${g.key}/`)) rest = want.slice(g.key.length + 1);
    if (rest !== null && (best === null || g.key.length > best.grant.key.length)) best = { grant: g, rest };
  }
  if (best === null) {
    const names = granted.map((g) => `\`${g.name}\``).join(', ');
    throw KilnError.invalidConfig(
      `\`${path}\` is in no directory granted to this plugin (${names ? `granted: ${names}` : 'none is granted'}); ` +
        'grant its directory in the workflow (grants: { dirs: [DIR:rw] }) or with --grant-dir DIR:rw',
    );
  }
  return best;
}

function fsError(op, path, e) {
  if (e instanceof KilnError || !(e && typeof e === 'object' && 'payload' in e)) return e;
  const code = String(e.payload);
  const what = `cannot ${op} \`${path}\``;
  let err;
  switch (code) {
    case 'no-entry':
      err = KilnError.invalidInput(`${what}: no such file or directory`);
      break;
    case 'access':
    case 'not-permitted':
    case 'read-only':
      err = KilnError.invalidConfig(
        `${what}: ${code} (${op === 'read' ? 'is its directory granted?' : 'is its directory granted read-write, DIR:rw?'})`,
      );
      break;
    case 'is-directory':
    case 'not-directory':
    case 'exist':
    case 'name-too-long':
      err = KilnError.invalidInput(`${what}: ${code}`);
      break;
    default:
      err = KilnError.internal(`${what}: ${code}`);
  }
  err.code = code;
  return err;
}

function withFile(op, path, openFlags, flags, fn) {
  const { grant, rest } = locate(path);
  let fd;
  try {
    fd = grant.dir.openAt({ symlinkFollow: true }, rest, openFlags, flags);
    return fn(fd);
  } catch (e) {
    throw fsError(op, path, e);
  } finally {
    dispose(fd);
  }
}

function writeAll(fd, bytes, offset) {
  let at = offset;
  for (let done = 0; done < bytes.length; ) {
    const n = Number(fd.write(bytes.subarray(done, done + CHUNK), at));
    if (n <= 0) throw KilnError.internal('the host wrote nothing');
    done += n;
    at += BigInt(n);
  }
}

function utf8(text) {
  return new TextEncoder().encode(String(text));
}

/** The bytes of file `path`, in a directory granted to the plugin. */
export function readBytes(path) {
  return withFile('read', path, {}, { read: true }, (fd) => {
    const chunks = [];
    let total = 0;
    for (let offset = 0n; ; ) {
      const [chunk, end] = fd.read(BigInt(CHUNK), offset);
      chunks.push(chunk);
      total += chunk.length;
      offset += BigInt(chunk.length);
      if (end || chunk.length === 0) break;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  });
}

/** The text (UTF-8) of file `path`. */
export function readText(path) {
  return new TextDecoder().decode(readBytes(path));
}

/** Writes `bytes` to file `path`, replacing what it held. */
export function writeBytes(path, bytes) {
  withFile('write', path, { create: true, truncate: true }, { write: true }, (fd) => writeAll(fd, bytes, 0n));
}

/** Writes `text` (UTF-8) to file `path`, replacing what it held. */
export function writeText(path, text) {
  writeBytes(path, utf8(text));
}

/** Appends `bytes` to file `path`, creating it when it does not exist. */
export function appendBytes(path, bytes) {
  withFile('write', path, { create: true }, { write: true }, (fd) => writeAll(fd, bytes, fd.stat().size));
}

/** Appends `text` (UTF-8) to file `path`, creating it when it does not exist. */
export function appendText(path, text) {
  appendBytes(path, utf8(text));
}

/** Whether `path` exists (false too when it is in no granted directory). */
export function exists(path) {
  let where;
  try {
    where = locate(path);
  } catch {
    return false;
  }
  try {
    where.grant.dir.statAt({ symlinkFollow: true }, where.rest);
    return true;
  } catch (e) {
    if (e && typeof e === 'object' && e.payload === 'no-entry') return false;
    throw fsError('inspect', path, e);
  }
}

/** Creates directory `path` and any missing parents. */
export function makeDir(path) {
  const { grant, rest } = locate(path);
  if (rest === '.') return;
  let sofar = '';
  for (const part of rest.split('/')) {
    sofar = sofar ? `${sofar}/${part}` : part;
    try {
      grant.dir.createDirectoryAt(sofar);
    } catch (e) {
      if (!(e && typeof e === 'object' && e.payload === 'exist')) throw fsError('create', path, e);
    }
  }
}

/** The names in directory `path`, sorted. */
export function listDir(path) {
  return withFile('list', path, { directory: true }, { read: true }, (fd) => {
    const names = [];
    const entries = fd.readDirectory();
    try {
      for (let e = entries.readDirectoryEntry(); e; e = entries.readDirectoryEntry()) names.push(e.name);
    } finally {
      dispose(entries);
    }
    return names.sort();
  });
}

/** The file helpers, together. */
export const fs = { readBytes, readText, writeBytes, writeText, appendBytes, appendText, exists, makeDir, listDir, grantedDirs };

// ---------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------

/** Runs `fn`, giving the contract's result: ok with its value, or err with the error. */
async function guarded(fn) {
  try {
    return { tag: 'ok', val: await fn() };
  } catch (e) {
    return { tag: 'err', val: toWitError(e) };
  }
}

/** The call's config with the descriptor's defaults; a required key left unset is an error. */
function configFor(desc, pairs) {
  const config = new Config(pairs, desc.config);
  for (const k of desc.config) {
    if (k.required && config.get(k.name) === undefined) {
      throw KilnError.invalidConfig(`missing config key \`${k.name}\`${k.description ? ` (${k.description})` : ''}`);
    }
  }
  return config;
}

function need(fn, what) {
  if (typeof fn !== 'function') throw new TypeError(`${what} must be a function`);
  return fn;
}

/**
 * A step: `export const step = kiln.step({describe, run})`.
 * `run(inputs: Inputs, config: Config)` returns the outputs (see toWitOutputs), maybe async.
 */
export function step({ describe, run }) {
  role = 'step';
  const desc = normalizeDescriptor(describe);
  need(run, 'kiln.step: run');
  return {
    describe: () => desc,
    run: (inputs, config) =>
      guarded(async () => toWitOutputs(await run(new Inputs(inputs), configFor(desc, config)))),
  };
}

/**
 * A validator: `export const validator = kiln.validator({describe, validate})`.
 * `validate(inputs, config)` returns an array of checks (`kiln.check(...)`); a failed check
 * is a result, not an error.
 */
export function validator({ describe, validate }) {
  role = 'validator';
  const desc = normalizeDescriptor(describe);
  need(validate, 'kiln.validator: validate');
  return {
    describe: () => desc,
    validate: (inputs, config) =>
      guarded(async () => {
        const checks = await validate(new Inputs(inputs), configFor(desc, config));
        if (!Array.isArray(checks)) throw KilnError.internal(`validate must return an array of checks, not a ${typeName(checks)}`);
        return checks.map(normalizeCheck);
      }),
  };
}

/**
 * A model runner: `export const modelRunner = kiln.modelRunner({describe, load})`.
 * `load(artifact: Uint8Array, config: Config)` returns the model: an object with
 * `predict(inputs: Inputs)` returning outputs, and `metadata` (kiln.metadata() or a plain
 * object, or a method returning one). The helper gives ComponentizeJS the `Model` class
 * the contract's `model` resource is exported as; a model's `dispose()`, if any, runs when
 * the host drops it.
 */
export function modelRunner({ describe, load }) {
  role = 'model-runner';
  const desc = normalizeDescriptor(describe);
  need(load, 'kiln.modelRunner: load');

  class Model {
    #model;
    #metadata;

    constructor(model, meta) {
      this.#model = model;
      this.#metadata = meta;
    }

    static load(artifact, config) {
      return guarded(async () => {
        const model = await load(artifact, configFor(desc, config));
        if (!model || typeof model.predict !== 'function') {
          throw KilnError.internal('load must return a model with a predict(inputs) method');
        }
        const meta = typeof model.metadata === 'function' ? await model.metadata() : model.metadata;
        return new Model(model, normalizeMetadata(meta));
      });
    }

    metadata() {
      return this.#metadata;
    }

    predict(inputs) {
      return guarded(async () => toWitOutputs(await this.#model.predict(new Inputs(inputs))));
    }

    [DISPOSE]() {
      try {
        this.#model.dispose?.();
      } catch {
        // the host is done with it either way
      }
    }
  }

  return { Model, describe: () => desc };
}

/**
 * A run's event as a plain object, by `type`: run-started {workflow}, param {key, value},
 * metric {key, value, step, timestampMs}, tag {key, value}, artifact {artifact, name,
 * digest} (`artifact` is `step.output sha256:…`), run-finished {status}.
 */
export function eventFromWit(e) {
  const v = e?.val;
  switch (e?.tag) {
    case 'run-started':
      return { type: 'run-started', workflow: v };
    case 'param':
      return { type: 'param', key: v[0], value: v[1] };
    case 'metric':
      return { type: 'metric', key: v.key, value: v.value, step: Number(v.step), timestampMs: Number(v.timestampMs) };
    case 'tag':
      return { type: 'tag', key: v[0], value: v[1] };
    case 'artifact': {
      const space = v.lastIndexOf(' ');
      return space > 0
        ? { type: 'artifact', artifact: v, name: v.slice(0, space), digest: v.slice(space + 1) }
        : { type: 'artifact', artifact: v, name: v, digest: '' };
    }
    case 'run-finished':
      return { type: 'run-finished', status: v };
    default:
      return { type: String(e?.tag), value: v };
  }
}

/**
 * A tracker: `export const tracker = kiln.tracker({describe, onEvents})`.
 * `onEvents(runId, events, config)` receives one batch of a run's events, as plain objects
 * (see eventFromWit). Each batch may reach a fresh instance: keep state in files, not memory.
 */
export function tracker({ describe, onEvents }) {
  role = 'tracker';
  const desc = normalizeDescriptor(describe);
  need(onEvents, 'kiln.tracker: onEvents');
  return {
    describe: () => desc,
    onEvents: (runId, events, config) =>
      guarded(async () => {
        await onEvents(runId, Array.from(events, eventFromWit), configFor(desc, config));
      }),
  };
}
