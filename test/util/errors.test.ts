import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FieldError, UserError, check, checkField, invariant } from '../../src/util/errors.ts';

test('user errors vs invariants: check → UserError, checkField → FieldError naming the field, invariant → a plain Error', () => {
  assert.throws(() => check(false, 'bad file'), (e: unknown) => e instanceof UserError && e.message === 'bad file');
  assert.throws(() => checkField(false, 'owl.lambda', () => 'must be positive, got 0'),
    (e: unknown) => e instanceof FieldError && e instanceof UserError && e.field === 'owl.lambda' && e.problem === 'must be positive, got 0' && e.message === 'owl.lambda must be positive, got 0');
  assert.throws(() => invariant(false, () => 'mask buffer has 3 entries'), (e: unknown) => e instanceof Error && !(e instanceof UserError) && e.message === 'mask buffer has 3 entries');
  check(true, 'unused');
  checkField(1, 'x', 'unused');
  invariant('non-empty', 'unused');
});
