import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDecimal } from '../../src/util/decimal.ts';

test('parseDecimal reads decimal and scientific notation, and nothing else Number() accepts', () => {
  for (const [text, value] of [['0.5', 0.5], [' .25 ', 0.25], ['-1e-3', -0.001], ['+2', 2], ['5.', 5], ['1E2', 100]] as const) {
    assert.equal(parseDecimal(text), value, text);
  }
  for (const text of ['', ' ', '0x1', '0b1', '0o7', 'Infinity', '-Infinity', 'NaN', '1e400', '1,5', '1_000', '.', 'e3', '1e']) {
    assert.equal(parseDecimal(text), null, text);
  }
});
