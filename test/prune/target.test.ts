import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeTarget, parsePattern, parseTarget, validateTarget } from '../../src/prune/target.ts';
import { FieldError } from '../../src/util/errors.ts';

const fieldError = (field: string, pattern: RegExp) => (e: unknown) =>
  e instanceof FieldError && e.field === field && pattern.test(e.problem) && e.message === `${field} ${e.problem}`;

test('parseTarget reads a sparsity (number or text) or an n:m pattern', () => {
  assert.deepEqual(parseTarget(0.5), { kind: 'unstructured', sparsity: 0.5 });
  assert.deepEqual(parseTarget('0.5'), { kind: 'unstructured', sparsity: 0.5 });
  assert.deepEqual(parseTarget('.25'), { kind: 'unstructured', sparsity: 0.25 });
  assert.deepEqual(parseTarget('5e-1'), { kind: 'unstructured', sparsity: 0.5 });
  assert.deepEqual(parseTarget(' 2:4 '), { kind: 'nm', n: 2, m: 4 });
  assert.deepEqual(parseTarget('4 : 8'), { kind: 'nm', n: 4, m: 8 });
});

test('parseTarget refuses bad values with a FieldError naming the given field', () => {
  for (const bad of [0, 1, 1.5, -0.1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => parseTarget(bad, 'sparsity'), fieldError('sparsity', new RegExp(`strictly between 0 and 1 .*got ${bad}$`)), String(bad));
  }
  for (const bad of ['0', '1', '1.5', '-0.2']) assert.throws(() => parseTarget(bad), fieldError('target', /between 0 and 1/), bad);
  for (const bad of ['half', '', '2:', '0x1', '1/2']) {
    assert.throws(() => parseTarget(bad, 'pattern'), fieldError('pattern', /must be a sparsity like 0\.5 or an n:m pattern like 2:4/), bad);
  }
  assert.throws(() => parseTarget('4:4', 'pattern'), fieldError('pattern', /^4:4 prunes n of every m weights, so n must be smaller than m$/));
  assert.throws(() => parseTarget('5:4', 'pattern'), fieldError('pattern', /n must be smaller than m/));
  assert.throws(() => parseTarget('0:4', 'pattern'), fieldError('pattern', /positive integers, got 0:4/));
});

test('parsePattern reads n:m only: a sparsity given as a pattern is refused, not pruned unstructured', () => {
  assert.deepEqual(parsePattern(' 2 : 4 '), { kind: 'nm', n: 2, m: 4 });
  for (const bad of ['0.5', '50%', 'abc', '2:x', '2.5:4', '-2:4', '']) {
    assert.throws(() => parsePattern(bad), fieldError('pattern', new RegExp(`^must be n:m with whole numbers, e\\.g\\. 2:4 \\(n of every m consecutive weights pruned\\), got "${bad.replace('.', '\\.')}"$`)), bad);
  }
  assert.throws(() => parsePattern('2:99999999999999999999', 'p'), fieldError('p', /positive integers, got 2:100000000000000000000/));
  assert.throws(() => parsePattern('4:4'), fieldError('pattern', /n must be smaller than m/));
});

test('validateTarget checks targets built in code', () => {
  assert.throws(() => validateTarget({ kind: 'nm', n: 1.5, m: 4 }), fieldError('target', /positive integers/));
  assert.throws(() => validateTarget({ kind: 'sparse' } as never), fieldError('target', /unknown kind "sparse"/));
  const target = { kind: 'nm', n: 2, m: 4 } as const;
  assert.equal(validateTarget(target), target);
});

test('describeTarget', () => {
  assert.equal(describeTarget({ kind: 'nm', n: 2, m: 4 }), '2:4');
  assert.equal(describeTarget({ kind: 'unstructured', sparsity: 0.5 }), '50.0% unstructured');
  // null threw a TypeError; a sparsity of 50 read "5000.0% unstructured".
  assert.throws(() => describeTarget(null as never), fieldError('target', /^must be \{ kind: 'unstructured', sparsity \} or \{ kind: 'nm', n, m \} \(parseTarget reads "0\.5" and "2:4"\), got null$/));
  assert.throws(() => describeTarget({ kind: 'unstructured', sparsity: 50 }), fieldError('target', /strictly between 0 and 1 .*got 50$/));
  assert.throws(() => describeTarget({ kind: 'nm', n: 4, m: 2 }), fieldError('target', /^4:2 prunes n of every m weights, so n must be smaller than m$/));
  assert.throws(() => describeTarget('2:4' as never), fieldError('target', /got "2:4"$/));
});
