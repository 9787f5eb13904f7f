/**
 * Processes of a `crepe` run as /proc shows them (Linux): the child a relaunched crepe starts
 * (cli/relaunch.ts), its environment, and whether a process has gone.
 */
import { readFileSync } from 'node:fs';
import { readThpEnabled, relaunchEnvForThisProcess, runtimeGlibcVersion, thpMode } from '../../src/util/huge-pages.ts';

/** Why `crepe` run from this process would not relaunch itself, or null when it would. */
export function noRelaunchReason(): string | null {
  if (relaunchEnvForThisProcess()) return null;
  return `crepe does not relaunch itself here (${process.platform}, THP ${thpMode(readThpEnabled()) ?? 'unavailable'}, `
    + `glibc ${runtimeGlibcVersion() ?? 'absent'}, GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES ?? ''}, CREPE_HUGE_PAGES=${process.env.CREPE_HUGE_PAGES ?? ''})`;
}

/** The pids of the processes `pid`'s main thread started that still run (none for a process that has gone). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * The environment block process `pid` started with (its exec): NAME=value entries, each ending in
 * a NUL; '' once it has gone. glibc ≥ 2.36 splits GLIBC_TUNABLES there in place once it has read it
 * (a NUL for each ':'; the process's own copy stays whole), so a match must take either separator.
 */
export function environText(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return '';
  }
}

/** Kilobytes of process `pid`'s memory in transparent huge pages (AnonHugePages of smaps_rollup); 0 once it has gone. */
export function anonHugePagesKiB(pid: number): number {
  try {
    return Number(/^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Whether process `pid` has ended: no /proc entry, or a zombie (ended, not reaped). */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once every process of `pids` has ended; rejects after `timeoutMs`. */
export async function waitUntilGone(pids: readonly number[], timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (pids.some((pid) => !processGone(pid))) {
    if (Date.now() - started > timeoutMs) throw new Error(`process(es) ${pids.filter((pid) => !processGone(pid)).join(', ')} still running after ${timeoutMs} ms`);
    await sleep(10);
  }
}

/**
 * The child a relaunched crepe `pid` started, once it runs crepe with the relaunch's environment
 * (before its exec, a fresh child still has the parent's); rejects after `timeoutMs`.
 */
export async function relaunchedChild(pid: number, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const child = childrenOf(pid).find((c) => /(^|\0)CREPE_RELAUNCHED=1\0/.test(environText(c)));
    if (child !== undefined) return child;
    if (Date.now() - started > timeoutMs) throw new Error(`crepe process ${pid} started no relaunched child within ${timeoutMs} ms`);
    await sleep(5);
  }
}
