// kiln.js outside a component: conversions to and from the contract's values, and the
// role helpers' errors. Run from the repository root (Node 20 or later):
//   node --import ./sdk/js/test/register.mjs --test sdk/js/test/kiln.test.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as kiln from '../kiln.js';
import { calls } from './host-stub.mjs';

const wit = (tag, val) => ({ tag, val });
const tensorValue = (dtype, shape, Ctor, values) =>
  wit('tensor', { dtype, shape: BigUint64Array.from(shape, BigInt), data: new Uint8Array(Ctor.from(values).buffer) });

test('tensors round-trip through the contract in every dtype', () => {
  const cases = [
    ['float32', Float32Array, [1.5, -2]],
    ['float64', Float64Array, [1.5, -2]],
    ['int32', Int32Array, [7, -1]],
    ['int64', BigInt64Array, [7n, -1n]],
    ['uint8', Uint8Array, [0, 255]],
    ['boolean', Uint8Array, [1, 0]],
  ];
  for (const [dtype, Ctor, values] of cases) {
    const t = kiln.Tensor.fromWit(tensorValue(dtype, [2, 1], Ctor, values).val);
    assert.equal(t.dtype, dtype);
    assert.deepEqual(t.shape, [2, 1]);
    const back = t.toWit();
    assert.deepEqual(Array.from(back.shape), [2n, 1n]);
    assert.deepEqual(Array.from(back.data), Array.from(new Uint8Array(Ctor.from(values).buffer)));
  }
  const bad = tensorValue('float64', [3], Float64Array, [1, 2]).val;
  assert.throws(() => kiln.Tensor.fromWit(bad), { kind: 'invalid-input', message: /needs 24 bytes, has 16/ });
});

test('tensor helpers', () => {
  const t = kiln.Tensor.from([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(t.shape, [2, 3]);
  assert.equal(t.get(1, 2), 6);
  assert.deepEqual(t.rows().map((r) => Array.from(r)), [[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(t.reshape(-1, 2).shape, [3, 2]);
  assert.deepEqual(t.map((v) => v * 2, 'int32').toArray(), [[2, 4, 6], [8, 10, 12]]);
  assert.equal(kiln.Tensor.from([1n, 2n]).dtype, 'int64');
  assert.throws(() => t.get(2, 0), RangeError);
  assert.throws(() => kiln.Tensor.from([[1, 2], [3]]), /ragged/);
  assert.throws(() => new kiln.Tensor(new Float64Array(3), [2, 2]), { kind: 'internal' });
});

test('tables keep column types and missing values', () => {
  const t = kiln.Table.from({ a: [1, null, 3], b: ['x', 'y', null], c: [1n, 2n, 3n], d: [true, false, true] });
  assert.deepEqual(t.columnNames, ['a', 'b', 'c', 'd']);
  assert.equal(t.numRows, 3);
  const w = t.toWit();
  assert.deepEqual(w.columns.map((c) => c.data.tag), ['float64', 'text', 'int64', 'boolean']);
  assert.ok(w.columns[0].data.val instanceof Float64Array);
  assert.ok(w.columns[2].data.val instanceof BigInt64Array);
  assert.deepEqual(w.columns[0].valid, [true, false, true]);
  assert.equal(w.columns[2].valid, undefined);
  const back = kiln.Table.fromWit(w);
  assert.deepEqual(back.rows()[1], { a: null, b: 'y', c: 2n, d: false });
  assert.ok(Number.isNaN(back.numeric('a')[1]));
  assert.throws(() => back.numeric('b'), { kind: 'invalid-input' });
  assert.throws(() => back.column('zz'), { message: /no column `zz`; the table has `a`, `b`, `c`, `d`/ });
  assert.deepEqual(back.select('c', 'a').columnNames, ['c', 'a']);
  assert.deepEqual(back.drop('a').columnNames, ['b', 'c', 'd']);
  assert.throws(() => back.toTensor(['a']), /missing values/);
  assert.deepEqual(Array.from(back.takeRows([2, 0]).get('c')), [3n, 1n]);
  const ragged = { columns: [w.columns[0], { name: 'e', data: wit('float64', new Float64Array(1)) }] };
  assert.throws(() => kiln.Table.fromWit(ragged), { kind: 'invalid-input', message: /column `e` has 1 rows/ });
  assert.equal(kiln.Table.fromWit({ columns: [] }).numRows, 0);
});

test('inputs are taken by kind', () => {
  const inputs = new kiln.Inputs([
    { name: 's', value: wit('scalar', 2.5) },
    { name: 'j', value: wit('json', '{"a": 1}') },
    { name: 'bad', value: wit('json', '{') },
  ]);
  assert.equal(inputs.scalar('s'), 2.5);
  assert.deepEqual(inputs.json('j'), { a: 1 });
  assert.equal(inputs.text('j'), '{"a": 1}');
  assert.equal(inputs.table('t', { optional: true }), null);
  assert.throws(() => inputs.table('t'), { kind: 'invalid-input', message: 'missing input `t`' });
  assert.throws(() => inputs.tensor('s'), { message: 'input `s` must be a tensor, got a scalar' });
  assert.throws(() => inputs.json('bad'), { kind: 'invalid-input' });
});

test('config reads declared defaults and refuses bad values', () => {
  const keys = kiln.descriptor('x').config('factor', 2, '').config('on', 'yes', '').build().config;
  const c = new kiln.Config([['n', ' 3 '], ['n', '4'], ['list', 'a, b,,c']], keys);
  assert.equal(c.number('n'), 4);
  assert.equal(c.number('factor'), 2);
  assert.equal(c.bool('on'), true);
  assert.equal(c.int('missing', 7), 7);
  assert.deepEqual(c.list('list'), ['a', 'b', 'c']);
  assert.throws(() => c.number('missing'), { kind: 'invalid-config', message: 'missing config key `missing`' });
  assert.throws(() => new kiln.Config([['n', 'x']]).number('n'), { kind: 'invalid-config' });
  assert.throws(() => new kiln.Config([['n', '1.5']]).int('n'), { kind: 'invalid-config' });
  assert.throws(() => new kiln.Config([['m', 'c']]).choice('m', ['a', 'b']), /must be one of a, b/);
});

test('outputs become the contract value they look like', () => {
  const out = kiln.toWitOutputs({
    n: 1,
    s: 'hi',
    b: new Uint8Array([1]),
    j: { a: 1 },
    k: kiln.json([1]),
    f: new Float32Array([1, 2]),
  });
  assert.deepEqual(out.map((o) => [o.name, o.value.tag]), [
    ['n', 'scalar'], ['s', 'text'], ['b', 'bytes'], ['j', 'json'], ['k', 'json'], ['f', 'tensor'],
  ]);
  assert.throws(() => kiln.toWitOutputs({ d: new Date() }), { kind: 'internal', message: /output `d`/ });
  assert.throws(() => kiln.toWitOutputs({ u: undefined }), { kind: 'internal' });
});

test('descriptors are checked', () => {
  assert.throws(() => kiln.descriptor('x').input('a', 'tensr').build(), /kind `tensr`/);
  assert.throws(() => kiln.descriptor('x').input('a', 'table').input('a', 'table').build(), /declared twice/);
  const d = kiln.descriptor('x', 'y').optionalInput('a', 'any', 'A').requiredConfig('k', 'K').build();
  assert.deepEqual(d.inputs, [{ name: 'a', kind: 'any', optional: true, description: 'A' }]);
  assert.deepEqual(d.config, [{ name: 'k', required: true, default: undefined, description: 'K' }]);
});

test('a step returns ok or the contract error, never throws', async () => {
  const step = kiln.step({
    describe: kiln.descriptor('s').input('x', 'scalar').output('y', 'scalar').requiredConfig('mode'),
    run(inputs, config) {
      if (config.get('mode') === 'type') null.boom;
      if (config.get('mode') === 'track') kiln.tracking.logMetric('m', 1, 2);
      return { y: inputs.scalar('x') * 2 };
    },
  });
  assert.equal(step.describe().name, 's');
  const x = [{ name: 'x', value: wit('scalar', 4) }];
  assert.deepEqual(await step.run(x, [['mode', 'ok']]), { tag: 'ok', val: [{ name: 'y', value: wit('scalar', 8) }] });
  assert.deepEqual(await step.run(x, []), {
    tag: 'err', val: { kind: 'invalid-config', message: 'missing config key `mode`' },
  });
  assert.equal((await step.run([], [['mode', 'ok']])).val.kind, 'invalid-input');
  const typeError = await step.run(x, [['mode', 'type']]);
  assert.equal(typeError.val.kind, 'internal');
  assert.match(typeError.val.message, /^TypeError: /);
  await step.run(x, [['mode', 'track']]);
  assert.deepEqual(calls.at(-1), ['metric', 'm', 1, 2n]);
});

test('a validator normalises its checks', async () => {
  const v = kiln.validator({
    describe: kiln.descriptor('v'),
    validate: () => [kiln.check('a', true, { observed: 1 }), { name: 'b', passed: false, severity: 'warning' }],
  });
  const r = await v.validate([], []);
  assert.deepEqual(r.val, [
    { name: 'a', passed: true, severity: 'error', observed: 1, detail: '' },
    { name: 'b', passed: false, severity: 'warning', observed: undefined, detail: '' },
  ]);
  const bad = kiln.validator({ describe: { name: 'v' }, validate: () => 'nope' });
  assert.equal((await bad.validate([], [])).val.kind, 'internal');
});

test('a model runner exports the model resource as a class', async () => {
  const runner = kiln.modelRunner({
    describe: kiln.descriptor('m'),
    load(artifact) {
      const k = artifact[0];
      return {
        metadata: kiln.metadata().input('x', 'scalar').property('k', k),
        predict: (inputs) => ({ y: inputs.scalar('x') * k }),
      };
    },
  });
  const loaded = await runner.Model.load(new Uint8Array([3]), []);
  assert.equal(loaded.tag, 'ok');
  assert.ok(loaded.val instanceof runner.Model);
  assert.deepEqual(loaded.val.metadata().properties, [['k', '3']]);
  const y = await runner.Model.prototype.predict.call(loaded.val, [{ name: 'x', value: wit('scalar', 2) }]);
  assert.deepEqual(y.val, [{ name: 'y', value: wit('scalar', 6) }]);
  assert.equal((await runner.Model.prototype.predict.call(loaded.val, [])).val.kind, 'invalid-input');
});

test('a tracker gets plain events, may not track, and sees only granted directories', async () => {
  const seen = [];
  const t = kiln.tracker({
    describe: kiln.descriptor('t'),
    onEvents(runId, events, config) {
      seen.push(...events);
      if (config.get('track')) kiln.tracking.setTag('a', 'b');
      if (config.get('write')) kiln.writeText('out/x.txt', 'hi');
    },
  });
  const events = [
    wit('run-started', 'wf'),
    wit('metric', { key: 'k', value: 0.5, step: 2n, timestampMs: 10n }),
    wit('param', ['p', 'v']),
    wit('artifact', 'train.model sha256:ab'),
    wit('run-finished', 'ok'),
  ];
  assert.deepEqual(await t.onEvents('r', events, []), { tag: 'ok', val: undefined });
  assert.deepEqual(seen, [
    { type: 'run-started', workflow: 'wf' },
    { type: 'metric', key: 'k', value: 0.5, step: 2, timestampMs: 10 },
    { type: 'param', key: 'p', value: 'v' },
    { type: 'artifact', artifact: 'train.model sha256:ab', name: 'train.model', digest: 'sha256:ab' },
    { type: 'run-finished', status: 'ok' },
  ]);
  assert.equal((await t.onEvents('r', [], [['track', '1']])).val.kind, 'unsupported');
  const denied = await t.onEvents('r', [], [['write', '1']]);
  assert.equal(denied.val.kind, 'invalid-config');
  assert.match(denied.val.message, /none is granted/);
});
