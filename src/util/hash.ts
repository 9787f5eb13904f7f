/** sha256 helpers for reports: files are hashed in streamed chunks, never read whole. */
import { createHash } from 'node:crypto';
import { closeSync } from 'node:fs';
import { openInputFile, readInputBytes } from '../io/input-file.ts';

/** sha256 of a regular file (a FIFO or device is refused by name); `what` describes it in that refusal. */
export function sha256File(path: string, what = 'file'): string {
  const hash = createHash('sha256');
  const { fd } = openInputFile(path, what);
  try {
    const chunk = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = readInputBytes(fd, chunk, 0, chunk.length, null, path);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export function sha256Bytes(data: ArrayBufferView | string): string {
  const hash = createHash('sha256');
  hash.update(typeof data === 'string' ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return hash.digest('hex');
}
