/**
 * Positional reads shared by the checkpoint readers (safetensors, GGUF, llama2.c): each opens its
 * file once, validates the header, then reads byte ranges by offset.
 */
import { closeSync } from 'node:fs';
import { openInputFile, readInputBytes } from './input-file.ts';
import { UserError } from '../util/errors.ts';

/** readSync takes at most 2 GiB - 1 bytes per call. */
const MAX_READ_CHUNK = 1 << 30;

/**
 * Exactly `byteLength` bytes at `position`: in a fresh buffer, or at the start of `scratch` when it
 * is given and large enough. Readers check every range against the file size when opening, so a
 * short read means the file shrank since.
 */
export function readBytesAt(fd: number, position: number, byteLength: number, filePath: string, scratch?: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const bytes = scratch && scratch.byteLength >= byteLength ? scratch.subarray(0, byteLength) : new Uint8Array(byteLength);
  readBytesInto(fd, position, bytes, filePath);
  return bytes;
}

/** Fills all of `target` with the bytes at `position` (readBytesAt into a buffer the caller reuses). */
export function readBytesInto(fd: number, position: number, target: Uint8Array, filePath: string): void {
  const byteLength = target.byteLength;
  let done = 0;
  while (done < byteLength) {
    const got = readInputBytes(fd, target, done, Math.min(MAX_READ_CHUNK, byteLength - done), position + done, filePath);
    if (got === 0) {
      throw new UserError(`${filePath}: unexpected end of file at byte ${position + done} (file truncated while open?)`);
    }
    done += got;
  }
}

/**
 * Opens `filePath` read-only and hands the descriptor and file size to `parse`, which returns the
 * open reader; the descriptor is closed if `parse` throws. `kind` names the expected format in
 * the cannot-open message ("GGUF file").
 */
export function openForReading<T>(filePath: string, kind: string, parse: (fd: number, fileSize: number) => T): T {
  const { fd, size } = openInputFile(filePath, kind);
  try {
    return parse(fd, size);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}
