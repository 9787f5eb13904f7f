/**
 * Benchmarks that report peak memory run their work in a child process, so that the peak
 * (process.resourceUsage().maxRSS) belongs to that work alone. The child writes its result as one
 * JSON line on stdout; its stderr lines are progress, passed on to the parent's log.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Runs `node --import tsx <script> --child <args…>` and returns the JSON of its last stdout line. */
export async function runBenchChild<T>(script: string, args: string[], log: (line: string) => void): Promise<T> {
  return (await runJsonProcess<T>(process.execPath, ['--import', 'tsx', script, '--child', ...args], log)).result;
}

/**
 * Runs `command args…`, passing its stderr lines to `log`, and returns the JSON of its last
 * stdout line with the wall time from start to exit.
 */
export async function runJsonProcess<T>(
  command: string, args: string[], log: (line: string) => void, env?: NodeJS.ProcessEnv,
): Promise<{ result: T; wallSeconds: number }> {
  const started = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const stdout: string[] = [];
  const stderrTail: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => stdout.push(line));
  createInterface({ input: child.stderr }).on('line', (line) => {
    log(line);
    stderrTail.push(line);
    if (stderrTail.length > 20) stderrTail.shift();
  });
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const last = stdout.filter((line) => line.trim() !== '').at(-1);
  if (exitCode !== 0 || last === undefined) {
    throw new Error(`${command} ${args.join(' ')} exited with ${exitCode}: ${stderrTail.slice(-5).join(' | ')}`);
  }
  return { result: JSON.parse(last) as T, wallSeconds };
}

/** The child's side: its result, as the one line the parent parses. */
export function sendChildResult(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Peak resident set size of this process so far, in bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** The value following `--name` on the command line. */
export function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}
