/**
 * Fresh directories under the system's temporary directory for tests that need real files,
 * removed when the test process exits, whether its tests passed or failed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];

/** A new empty directory named `<prefix>-XXXXXX` under os.tmpdir(), removed at process exit. */
export function tempDir(prefix: string): string {
  if (made.length === 0) process.on('exit', () => { for (const dir of made) rmSync(dir, { recursive: true, force: true }); });
  const dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  made.push(dir);
  return dir;
}
