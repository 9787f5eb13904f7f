/**
 * Atomic file output: write under a temporary name in the destination's directory, fsync, then
 * rename over the destination. A crash or error never leaves a file at the destination that looks
 * complete but is not; at worst a `.name.tmp-*` file remains, which nothing reads.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { asWriteError, writingToSync } from './write-error.ts';

/** A fresh temporary path beside `destination`: `<dir>/.<name>.tmp-<pid>-<random>`. */
export function tempPathFor(destination: string): string {
  const suffix = randomBytes(6).toString('hex');
  return path.join(path.dirname(destination), `.${path.basename(destination)}.tmp-${process.pid}-${suffix}`);
}

/** Temporary outputs that a process stopped by a signal would leave behind (see discardOnSignal). */
const pendingTemporaries = new Set<string>();

/**
 * Marks `temporary` (a file or directory being written, not yet in place) as removed by
 * `removePendingTemporaries`; the function returned unmarks it (once it is moved into place, or
 * gone). A work directory meant for --resume is not marked.
 */
export function discardOnSignal(temporary: string): () => void {
  pendingTemporaries.add(temporary);
  return () => keepOnSignal(temporary);
}

/** Unmarks `temporary` (moved into place, removed, or now worth keeping). */
export function keepOnSignal(temporary: string): void {
  pendingTemporaries.delete(temporary);
}

/**
 * Removes every marked temporary output: for a process about to exit on a signal (Ctrl-C). Worker
 * threads may still be writing into one (ENOTEMPTY while it is emptied): retried a few times, and
 * what still fails is left rather than thrown from a signal handler.
 */
export function removePendingTemporaries(): void {
  for (const temporary of pendingTemporaries) {
    try {
      rmSync(temporary, { recursive: true, force: true, maxRetries: 5, retryDelay: 10 });
    } catch {
      // Left behind; the exit goes on.
    }
  }
  pendingTemporaries.clear();
}

async function fsyncFile(filePath: string): Promise<void> {
  const handle = await open(filePath, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a completed rename durable. Some filesystems refuse fsync on directories; that is fine. */
export async function fsyncDirectory(dirPath: string): Promise<void> {
  try {
    const handle = await open(dirPath, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort only: the rename itself is already atomic.
  }
}

/**
 * Runs `writeTo(tmpPath)`, which must create and fill the file at tmpPath; then fsyncs it and
 * renames it to `destination`. On any failure the temporary file is removed and the error rethrown.
 */
export async function withAtomicFile<T>(destination: string, writeTo: (tmpPath: string) => Promise<T>): Promise<T> {
  const tmpPath = tempPathFor(destination);
  try {
    const result = await writeTo(tmpPath);
    await fsyncFile(tmpPath);
    await rename(tmpPath, destination);
    await fsyncDirectory(path.dirname(destination));
    return result;
  } catch (error) {
    await rm(tmpPath, { force: true });
    throw asWriteError(error, destination);
  }
}

/** Writes `data` (bytes, text, or byte arrays one after the other) to `destination` atomically. */
export async function atomicWriteFile(destination: string, data: Uint8Array | string | readonly Uint8Array[]): Promise<void> {
  await withAtomicFile(destination, (tmpPath) => writeFile(tmpPath, data, { flag: 'wx' }));
}

/** Writes `value` as pretty-printed JSON (2-space indent, trailing newline) atomically. */
export async function atomicWriteJson(destination: string, value: unknown): Promise<void> {
  await atomicWriteFile(destination, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Moves a finished directory into place at `target`, replacing an existing one only now, so a
 * reader never sees a half-written output (the old one is set aside, then removed).
 */
export function replaceDirectory(finished: string, target: string): void {
  writingToSync(target, () => {
    if (!existsSync(target)) {
      renameSync(finished, target);
      return;
    }
    const old = `${target}.crepe-old`;
    rmSync(old, { recursive: true, force: true });
    renameSync(target, old);
    renameSync(finished, target);
    rmSync(old, { recursive: true, force: true });
  });
}
