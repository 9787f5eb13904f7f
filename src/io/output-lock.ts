/**
 * One crepe run at a time per output: `<out>.crepe-lock`, created atomically (hard link of a
 * complete file, so no reader ever sees a half-written lock), names the owner — pid, host, the
 * process's start time — and is removed when the run ends. A second run on the same output is
 * refused with the owner's pid. A lock whose owner is gone (a killed run) is stale: it is taken
 * over, and the caller is told whose it was so it can say so. The same lock file guards other
 * shared things (a Hub download into the cache): there a second process waits for the first.
 */
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.ts';
import { asWriteError, makeDirectory, removeCreatedDirectories } from './write-error.ts';

export interface LockOwner {
  pid: number;
  hostname: string;
  /** When the owner process started (ISO 8601); tells a live owner from a recycled pid. */
  processStarted: string;
  /** When it took the lock (ISO 8601). */
  locked: string;
  /** Distinguishes two locks of the same process (in-process runs, a test harness). */
  token: string;
}

export interface OutputLock {
  /** The lock file. */
  readonly path: string;
  /** The stale lock this run took over, when there was one. */
  readonly tookOverFrom: LockOwner | null;
  /** Removes the lock if it is still this run's. Safe to call more than once. */
  release(): void;
}

/** The lock file of output `out`. */
export const lockPathFor = (out: string): string => `${path.resolve(out)}.crepe-lock`;

/** This process's start time, from the wall clock and its uptime (to the second). */
function processStartTime(): Date {
  return new Date(Math.round((Date.now() - process.uptime() * 1000) / 1000) * 1000);
}

/**
 * The fields of /proc/<pid>/stat after the parenthesised command name (field 3, the state, first),
 * or null where there is none (not Linux, no such process).
 */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * The start time of process `pid` on this host, from /proc (Linux); null where unknown. A pid
 * reused by an unrelated process has a later start time than the lock's owner.
 */
function startTimeOf(pid: number): Date | null {
  try {
    // Field 22: starttime, in clock ticks since boot.
    const ticks = Number(statFields(pid)?.[19]);
    const bootLine = readFileSync('/proc/stat', 'utf8').split('\n').find((line) => line.startsWith('btime '));
    if (!bootLine || !Number.isFinite(ticks)) return null;
    const clockTicksPerSecond = 100; // USER_HZ on every Linux architecture Node runs on
    return new Date((Number(bootLine.slice(6)) + ticks / clockTicksPerSecond) * 1000);
  } catch {
    return null;
  }
}

/** Whether the lock's owner is still running: 'alive', 'dead' or 'unknown' (another host). */
export function ownerStatus(owner: LockOwner): 'alive' | 'dead' | 'unknown' {
  if (owner.hostname !== os.hostname()) return 'unknown';
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0) return 'dead';
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return 'dead';
  }
  // A zombie has ended and holds nothing; it stays until reaped, which an orphan's init may never do.
  if (statFields(owner.pid)?.[0] === 'Z') return 'dead';
  const started = startTimeOf(owner.pid);
  const recorded = Date.parse(owner.processStarted);
  // A live process with that pid that started well after the owner is a recycled pid.
  if (started && Number.isFinite(recorded) && started.getTime() > recorded + 5000) return 'dead';
  return 'alive';
}

function readOwner(lockPath: string): LockOwner | null {
  let text: string;
  try {
    text = readFileSync(lockPath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw asWriteError(error, lockPath);
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    if (typeof owner.pid === 'number' && typeof owner.hostname === 'string') return owner;
  } catch {
    // fall through: unreadable content
  }
  // Never written by crepe's link-into-place; treat as a dead owner.
  return { pid: 0, hostname: os.hostname(), processStarted: '', locked: '', token: '' };
}

function describeOwner(owner: LockOwner): string {
  const host = owner.hostname === os.hostname() ? '' : ` on host ${owner.hostname}`;
  return `crepe process ${owner.pid}${host}${owner.locked ? ` (since ${owner.locked})` : ''}`;
}

/** Creates `lockPath` holding `owner`, atomically; false when a lock already exists. */
function tryCreate(lockPath: string, owner: LockOwner): boolean {
  const tmp = `${lockPath}.${owner.pid}-${owner.token}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'wx');
  } catch (error) {
    // Nothing was created (no space, no permission, a name too long): nothing to remove.
    throw asWriteError(error, lockPath);
  }
  try {
    try {
      writeSync(fd, `${JSON.stringify(owner)}\n`);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw asWriteError(error, lockPath);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** A lock file's live owner, when this process could not take it. */
export interface LockHeld {
  heldBy: LockOwner;
  /** 'unknown': the owner runs on another host, so crepe cannot tell whether it is still alive. */
  status: 'alive' | 'unknown';
}

/**
 * Takes lock file `lockPath` for this process (creating the directory it lies in), or returns its
 * live owner. A stale lock (its owner is gone) is taken over and `onStaleLock` told so, in one line.
 * With `tidy`, the directories created for the lock are removed again on release, or when the lock
 * is not taken, as far as they are empty by then (an output lock: a failed run leaves no empty
 * folders on the way to its output; a shared lock folder stays, as another process may be using it).
 */
export function tryLock(lockPath: string, onStaleLock?: (message: string) => void, tidy = false): OutputLock | LockHeld {
  const created = makeDirectory(path.dirname(lockPath));
  const untidy = (): void => {
    if (tidy) removeCreatedDirectories(path.dirname(lockPath), created);
  };
  try {
    return takeLock(lockPath, onStaleLock, untidy);
  } catch (error) {
    untidy();
    throw error;
  }
}

/** tryLock's work once the lock's directory exists; `untidy` runs when the lock is released. */
function takeLock(lockPath: string, onStaleLock: ((message: string) => void) | undefined, untidy: () => void): OutputLock | LockHeld {
  const owner: LockOwner = {
    pid: process.pid,
    hostname: os.hostname(),
    processStarted: processStartTime().toISOString(),
    locked: new Date().toISOString(),
    token: randomBytes(6).toString('hex'),
  };
  let tookOverFrom: LockOwner | null = null;
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(lockPath, owner)) break;
    const current = readOwner(lockPath);
    if (current === null) continue; // released in between: try again
    const status = ownerStatus(current);
    if (status !== 'dead') return { heldBy: current, status };
    if (attempt >= 3) return { heldBy: current, status: 'alive' };
    // Stale. Move it aside under a name of our own: of two runs taking over at once, one rename wins.
    const aside = `${lockPath}.stale-${owner.pid}-${owner.token}`;
    try {
      renameSync(lockPath, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw asWriteError(error, lockPath);
    }
    const moved = readOwner(aside);
    if (moved && moved.token !== current.token && ownerStatus(moved) !== 'dead') {
      // Another run took the lock over between our read and our rename: give it back.
      try {
        linkSync(aside, lockPath);
      } catch {
        // It has a lock again already; ours is refused either way.
      }
      rmSync(aside, { force: true });
      return { heldBy: moved, status: 'alive' };
    }
    rmSync(aside, { force: true });
    tookOverFrom = current;
  }
  let released = false;
  const lock: OutputLock = {
    path: lockPath,
    tookOverFrom,
    release() {
      if (released) return;
      released = true;
      heldLocks.delete(lock);
      const current = readOwner(lockPath);
      if (current && current.token === owner.token && current.pid === owner.pid) rmSync(lockPath, { force: true });
      untidy();
    },
  };
  heldLocks.add(lock);
  if (tookOverFrom) {
    // A callback that throws (a library caller's onProgress) leaves no lock behind.
    try {
      onStaleLock?.(`took over the stale lock ${lockPath} of ${describeOwner(tookOverFrom)}, which is no longer running`);
    } catch (error) {
      lock.release();
      throw error;
    }
  }
  return lock;
}

/** The locks this process holds. */
const heldLocks = new Set<OutputLock>();

/** Releases every lock this process holds: for a process about to exit on a signal. */
export function releaseHeldLocks(): void {
  for (const lock of [...heldLocks]) lock.release();
}

const isHeld = (result: OutputLock | LockHeld): result is LockHeld => 'heldBy' in result;

/** The one-line refusal for `what`, held by another run through `lockPath`. */
function inUse(what: string, lockPath: string, held: LockHeld): UserError {
  const where = held.status === 'unknown' ? '; crepe cannot check a process on another host — if it is not running, delete the lock file' : '';
  return new UserError(`${what} is in use by ${describeOwner(held.heldBy)} (lock ${lockPath})${where}`);
}

/**
 * Takes the lock of output `out` for this process, or refuses with a UserError naming the owner's
 * pid while another live run holds it. A stale lock is taken over and `onStaleLock` told so.
 */
export function lockOutput(out: string, onStaleLock?: (message: string) => void): OutputLock {
  const lockPath = lockPathFor(out);
  const result = tryLock(lockPath, onStaleLock, true);
  if (isHeld(result)) throw inUse(path.resolve(out), lockPath, result);
  return result;
}

/**
 * Takes lock file `lockPath`, waiting while another live crepe process on this host holds it
 * (polling every `pollMs`; `onWait` is told once, with the holder's line). An owner on another
 * host cannot be checked: refused at once rather than waited on for ever. `signal` ends the wait.
 */
export async function waitForLock(
  lockPath: string,
  what: string,
  options: { onWait?: (message: string) => void; onStaleLock?: (message: string) => void; signal?: AbortSignal; pollMs?: number } = {},
): Promise<OutputLock> {
  let told = false;
  for (;;) {
    options.signal?.throwIfAborted();
    const result = tryLock(lockPath, options.onStaleLock);
    if (!isHeld(result)) return result;
    if (result.status === 'unknown') throw inUse(what, lockPath, result);
    if (!told) options.onWait?.(`waiting for ${describeOwner(result.heldBy)}, which holds ${what}`);
    told = true;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
  }
}
