/**
 * Transparent huge pages (THP) for the memory glibc's malloc hands out. Fresh memory is touched
 * page by page, and on a VM a 4 KiB page fault can take 10–20 µs (BENCHMARKS.md): ONNX Runtime's
 * sessions, its outputs and crepe's new typed arrays pay that per 4 KiB, against once per 2 MiB
 * with huge pages. The kernel's THP mode (/sys/kernel/mm/transparent_hugepage/enabled) decides:
 * 'always' gives them to every large mapping; 'madvise', most distributions' default, only to
 * memory advised for them, which glibc ≥ 2.35 does when the process starts with
 * GLIBC_TUNABLES=glibc.malloc.hugetlb=1 — a running Node process cannot set that for itself, so
 * the `crepe` command starts itself again with it (cli/relaunch.ts).
 *
 * This module runs before anything else in the command line: it imports nothing heavy.
 */
import { readFileSync } from 'node:fs';

const THP_ENABLED = '/sys/kernel/mm/transparent_hugepage/enabled';
/** glibc's tunable: 1 = madvise its allocations for THP (0 = off, 2 = hugetlbfs pages). */
const HUGETLB_TUNABLE = 'glibc.malloc.hugetlb';
/** The first glibc with glibc.malloc.hugetlb. */
const HUGETLB_GLIBC: readonly [number, number] = [2, 35];
/** Set by the relauncher in its child's environment. */
export const RELAUNCHED_VARIABLE = 'CREPE_RELAUNCHED';
/** The user's opt-out of the relaunch: 0, off or false. */
export const OPT_OUT_VARIABLE = 'CREPE_HUGE_PAGES';

/** A value, or a function computing it only when asked (a system fact that costs time to read). */
export type Lazy<T> = T | (() => T);
const force = <T>(value: Lazy<T>): T => (typeof value === 'function' ? (value as () => T)() : value);

/** The THP mode, the bracketed word of the `enabled` file's text ("always [madvise] never"). */
export function thpMode(thpEnabled: string): string | undefined {
  return /\[(\w+)\]/.exec(thpEnabled)?.[1];
}

/** The text of /sys/kernel/mm/transparent_hugepage/enabled, or '' without one (not Linux, a restricted container). */
export function readThpEnabled(): string {
  try {
    return readFileSync(THP_ENABLED, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The running glibc's version ("2.36"), or undefined (another C library, or not Linux). Node's
 * diagnostic report is the one place that names it; it takes a few milliseconds, so callers ask
 * only when the answer matters. The report leaves out the network (no socket or DNS look-ups).
 */
export function runtimeGlibcVersion(): string | undefined {
  const report = process.report as typeof process.report & { excludeNetwork?: boolean };
  if (process.platform !== 'linux' || typeof report?.getReport !== 'function') return undefined;
  const excluded = report.excludeNetwork;
  try {
    report.excludeNetwork = true;
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: unknown } }).header;
    return typeof header?.glibcVersionRuntime === 'string' ? header.glibcVersionRuntime : undefined;
  } catch {
    return undefined;
  } finally {
    report.excludeNetwork = excluded;
  }
}

/** Whether glibc `version` ("2.35", "2.36.1") has the hugetlb tunable; false for undefined or an unreadable version. */
export function glibcHasHugetlbTunable(version: string | undefined): boolean {
  const match = /^(\d+)\.(\d+)/.exec(version ?? '');
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > HUGETLB_GLIBC[0] || (major === HUGETLB_GLIBC[0] && minor >= HUGETLB_GLIBC[1]);
}

/**
 * The value GLIBC_TUNABLES (colon-separated name=value entries) gives glibc.malloc.hugetlb, or
 * undefined without an entry. glibc reads the entries in order, so the last one counts.
 */
export function hugetlbTunable(glibcTunables: string | undefined): string | undefined {
  let value: string | undefined;
  for (const entry of (glibcTunables ?? '').split(':')) {
    const eq = entry.indexOf('=');
    if (eq >= 0 && entry.slice(0, eq) === HUGETLB_TUNABLE) value = entry.slice(eq + 1);
  }
  return value;
}

/**
 * Whether a process with THP `enabled` text `thpEnabled`, GLIBC_TUNABLES `glibcTunables` and glibc
 * `glibcVersion` gets huge pages for its large allocations: THP 'always', or 'madvise' with
 * glibc ≥ 2.35 asked to advise them (glibc.malloc.hugetlb=1).
 */
export function hugePagesFrom(thpEnabled: string, glibcTunables: string | undefined, glibcVersion: Lazy<string | undefined>): boolean {
  const mode = thpMode(thpEnabled);
  if (mode === 'always') return true;
  return mode === 'madvise' && hugetlbTunable(glibcTunables) === '1' && glibcHasHugetlbTunable(force(glibcVersion));
}

/**
 * The environment to start the `crepe` command again with, so that its allocations get huge
 * pages, or null to run in this process: only on Linux with THP 'madvise' and glibc ≥ 2.35, when
 * GLIBC_TUNABLES says nothing of glibc.malloc.hugetlb (a user's own setting, even 0, stands), this
 * is not already the relaunched process, and CREPE_HUGE_PAGES is not 0, off or false. The child's
 * environment is `env` with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES (after the user's other
 * tunables) and CREPE_RELAUNCHED=1. `glibcVersion` is asked for last (it costs milliseconds).
 */
export function hugePagesRelaunchEnv(
  env: NodeJS.ProcessEnv,
  thpEnabled: Lazy<string>,
  glibcVersion: Lazy<string | undefined>,
  platform: NodeJS.Platform = process.platform,
): NodeJS.ProcessEnv | null {
  if (platform !== 'linux' || env[RELAUNCHED_VARIABLE] !== undefined) return null;
  if (['0', 'off', 'false'].includes((env[OPT_OUT_VARIABLE] ?? '').trim().toLowerCase())) return null;
  if (hugetlbTunable(env.GLIBC_TUNABLES) !== undefined) return null;
  if (thpMode(force(thpEnabled)) !== 'madvise' || !glibcHasHugetlbTunable(force(glibcVersion))) return null;
  const tunables = env.GLIBC_TUNABLES ? `${env.GLIBC_TUNABLES}:${HUGETLB_TUNABLE}=1` : `${HUGETLB_TUNABLE}=1`;
  return { ...env, GLIBC_TUNABLES: tunables, [RELAUNCHED_VARIABLE]: '1' };
}

let hugePages: boolean | undefined;

/**
 * Whether this process's large allocations get transparent huge pages (`hugePagesFrom` for this
 * process's environment and system, read once). It decides what fresh memory costs, hence what a
 * new ONNX Runtime session costs: its copies, packed weights and arena are all first touched page
 * by page.
 */
export function mallocHugePages(): boolean {
  hugePages ??= hugePagesFrom(readThpEnabled(), process.env.GLIBC_TUNABLES, runtimeGlibcVersion);
  return hugePages;
}

/** `hugePagesRelaunchEnv` for this process's environment and system. */
export function relaunchEnvForThisProcess(): NodeJS.ProcessEnv | null {
  return hugePagesRelaunchEnv(process.env, readThpEnabled, runtimeGlibcVersion);
}
