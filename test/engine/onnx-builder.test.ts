import { test } from 'node:test';
import assert from 'node:assert/strict';
import onnxProto from 'onnx-proto';
import { GraphBuilder, OPSET } from '../../src/engine/onnx-builder.ts';
import { createSession, floatTensor } from '../../src/engine/session.ts';

test('gemm with transB reads a PyTorch [d_out, d_in] weight and adds the bias', async () => {
  const g = new GraphBuilder('linear');
  g.output(g.gemm(g.input('x', [2, 3]), g.input('w', [2, 3]), { transB: true, bias: g.input('b', [2]) }), 'y', [2, 2]);
  const session = await createSession(g.toBytes(), { device: 'cpu', threads: 1 });
  const result = await session.run({
    x: floatTensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
    w: floatTensor(Float32Array.from([1, 0, 0, 0, 1, 1]), [2, 3]),
    b: floatTensor(Float32Array.from([10, 20]), [2]),
  });
  // y[t, o] = Σ_i x[t, i]·w[o, i] + b[o]: row 0 → [1 + 10, 2 + 3 + 20], row 1 → [4 + 10, 5 + 6 + 20].
  assert.deepEqual(Array.from(result.y.data as Float32Array), [11, 25, 14, 31]);
  await session.release();
});

test('rmsNorm divides each row by its root mean square and scales by the weight', async () => {
  const g = new GraphBuilder('norm');
  g.output(g.rmsNorm(g.input('x', [2, 4]), g.input('w', [4]), 0), 'y', [2, 4]);
  const session = await createSession(g.toBytes(), { device: 'cpu', threads: 1 });
  const result = await session.run({
    x: floatTensor(Float32Array.from([1, 1, 1, 1, 2, -2, 2, -2]), [2, 4]),
    w: floatTensor(Float32Array.from([1, 2, 3, 0.5]), [4]),
  });
  // Row rms: 1 and 2, so both normalise to ±1 before the weight.
  const y = Array.from(result.y.data as Float32Array);
  const expected = [1, 2, 3, 0.5, 1, -2, 3, -0.5];
  y.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `${v} vs ${expected[i]}`));
  await session.release();
});

test('toBytes writes a model with IR 8, the standard opset and the declared inputs/outputs', () => {
  const g = new GraphBuilder('tiny');
  g.output(g.softmax(g.input('x', [1, 3]), -1), 'p', [1, 3]);
  const model = onnxProto.onnx.ModelProto.decode(g.toBytes());
  assert.equal(Number(model.irVersion), 8);
  assert.equal(Number(model.opsetImport.find((o) => o.domain === '')?.version), OPSET);
  assert.deepEqual(model.graph?.input?.map((i) => i.name), ['x']);
  assert.deepEqual(model.graph?.output?.map((o) => o.name), ['p']);
  assert.deepEqual(model.graph?.node?.map((n) => n.opType), ['Softmax', 'Identity']);
});
