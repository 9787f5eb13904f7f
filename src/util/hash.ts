/** sha256 helpers for reports: files are hashed in streamed chunks, never read whole. */
import { createHash } from 'node:crypto';
import { openSync, readSync, closeSync } from 'node:fs';

export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
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
