// Temporary outputs marked with discardOnSignal are what the command line's Ctrl-C handler removes
// (removePendingTemporaries) before it exits: unmarked ones stay, and a removal that fails is left
// behind rather than thrown from the handler.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { discardOnSignal, keepOnSignal, removePendingTemporaries } from '../../src/io/atomic.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-atomic');

describe('removePendingTemporaries', () => {
  it('removes what is marked, keeps what was unmarked, and never throws', () => {
    const marked = path.join(tmp, 'marked');
    const unmarked = path.join(tmp, 'unmarked');
    const kept = path.join(tmp, 'kept');
    for (const dir of [marked, unmarked, kept]) {
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'a.bin'), 'x');
    }
    // A path that cannot be removed (ENOTDIR: under a file), marked first, must not stop the others.
    writeFileSync(path.join(tmp, 'file'), 'x');
    discardOnSignal(path.join(tmp, 'file', 'x'));
    discardOnSignal(marked);
    discardOnSignal(unmarked)();
    discardOnSignal(kept);
    keepOnSignal(kept);
    assert.doesNotThrow(() => removePendingTemporaries());
    assert.ok(!existsSync(marked));
    assert.ok(existsSync(path.join(unmarked, 'a.bin')));
    assert.ok(existsSync(path.join(kept, 'a.bin')));
    // Each mark is used once.
    mkdirSync(marked);
    removePendingTemporaries();
    assert.ok(existsSync(marked));
  });
});
