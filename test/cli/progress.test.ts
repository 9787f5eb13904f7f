// The progress renderer with a fake clock (a terminal stream, bar and escape codes stripped): units
// and token rate shown, no ETA before 2 units and 3 s, the first unit's start-up left out of the
// rate, exponential smoothing thereafter.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { progressPrinter } from '../../src/cli/progress.ts';
import type { ProgressEvent } from '../../src/workflows/common.ts';

function recorder(total = 10, units: ProgressEvent['units'] = { name: 'layers' }) {
  let t = 0;
  let text = '';
  const stderr = { write: (s: string) => (text += s), isTTY: true };
  const printer = progressPrinter({ stdout: { write: () => {} }, stderr, progress: true }, () => t);
  return (ms: number, event: Omit<ProgressEvent, 'stage' | 'total'>): string => {
    t = ms;
    printer({ stage: 'prune', total, units, ...event });
    const shown = text.replace(/^\r(\x1b\[K)?(\[[#.]+\] )?/, '').replace(/\x1b\[K$/, '');
    text = '';
    return shown;
  };
}

describe('progress renderer', () => {
  it('leaves the first unit (start-up) out of the rate', () => {
    const at = recorder();
    at(0, { kind: 'start', done: 0 });
    assert.equal(at(9000, { kind: 'update', done: 1 }), 'prune 1/10 layers (10%) 9s elapsed');
    // 1 s per unit from unit 1 on (not 5 s as the average since the start would say): 8 left ≈ 8 s.
    assert.equal(at(10000, { kind: 'update', done: 2 }), 'prune 2/10 layers (20%) 10s elapsed, ~8s left');
  });

  it('shows no ETA before 3 s, then a smoothed one', () => {
    const at = recorder();
    at(0, { kind: 'start', done: 0 });
    at(500, { kind: 'update', done: 1 });
    assert.equal(at(1000, { kind: 'update', done: 2 }), 'prune 2/10 layers (20%) 1s elapsed');
    // 0.5 s/unit so far; a 3 s unit: 0.3·3 + 0.7·0.5 = 1.25 s per unit, 7 left → 8.75 s.
    assert.equal(at(4000, { kind: 'update', done: 3 }), 'prune 3/10 layers (30%) 4s elapsed, ~9s left');
    assert.equal(at(4100, { kind: 'done', done: 10, detail: 'ok' }), 'prune: ok (4.1s)\n');
  });

  it('counts evaluation windows and shows tokens per second', () => {
    const at = recorder(48, { name: 'windows', per: 6, tokens: 256 });
    at(0, { kind: 'start', done: 0 });
    // 12 work units = 2 windows = 512 tokens in 4 s.
    assert.equal(at(4000, { kind: 'update', done: 12 }), 'prune 2/8 windows (25%) 128 tokens/s, 4s elapsed');
  });
});
