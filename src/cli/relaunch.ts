/**
 * The `crepe` command starts itself again, once, with glibc asked to advise transparent huge
 * pages (util/huge-pages.ts says when), since a running Node process cannot ask for them. The
 * parent only waits: it loads neither commander nor ONNX Runtime, passes on SIGINT, SIGTERM and
 * SIGHUP, and ends as the child ended (its exit code, or the same signal). The child leaves its IPC
 * channel to the parent open so that it notices when the parent dies without passing anything on
 * (kill -9), and then stops at once too. Where the child cannot be started, the command runs in
 * this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { RELAUNCHED_VARIABLE, relaunchEnvForThisProcess } from '../util/huge-pages.ts';

/** Arguments answered at once, where a second process would only add its start-up. */
const ANSWERED_AT_ONCE = new Set(['--help', '-h', '--version', '-V']);
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs the command line `argv` in a child process started with huge pages, where that applies,
 * and resolves to its exit code; resolves to null where the command is to run in this process
 * (no relaunch applies, --help/--version/no arguments, a debugger flag, or the child failed to
 * start). A child killed by a signal ends this process with the same signal.
 */
export function relaunchForHugePages(argv: readonly string[]): Promise<number | null> {
  const script = process.argv[1];
  if (!script || argv.length === 0 || argv[0] === 'help' || argv.some((arg) => ANSWERED_AT_ONCE.has(arg))) return Promise.resolve(null);
  // A second process would try to open the same inspector port.
  if ([...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((arg) => arg.startsWith('--inspect'))) return Promise.resolve(null);
  const env = relaunchEnvForThisProcess();
  return env ? runInChild(script, argv, env) : Promise.resolve(null);
}

/**
 * Runs `script argv…` in a child Node process (this process's Node flags) with environment `env`,
 * passing on SIGINT, SIGTERM and SIGHUP, and resolves to its exit code; a child killed by a signal
 * ends this process with the same signal. Resolves to null when the child could not be started.
 * The child is to call `followRelauncher`.
 */
export function runInChild(script: string, argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...process.execArgv, script, ...argv], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env });
    } catch {
      resolve(null);
      return;
    }
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    const stopForwarding = (): void => {
      for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
    };
    let started = false;
    let settled = false;
    child.once('spawn', () => {
      started = true;
      for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
    });
    child.on('error', () => {
      // Before 'spawn': the child never ran, so the command runs here. After it: a failed kill or
      // send, and 'exit' still tells how the child ended.
      if (started || settled) return;
      settled = true;
      stopForwarding();
      resolve(null);
    });
    child.once('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      stopForwarding();
      if (code !== null) {
        resolve(code);
        return;
      }
      const number = signal ? constants.signals[signal] : undefined;
      if (signal) process.kill(process.pid, signal);
      // Still here: the signal is ignored in this process (or unknown); the shell's convention.
      resolve(128 + (number ?? 0));
    });
  });
}

/**
 * In the child a relauncher started: when the parent goes (its IPC channel closes), this process
 * stops at once, as the parent's kill -9 meant it to. The channel does not keep the process alive.
 * Returns whether this process is such a child.
 */
export function followRelauncher(): boolean {
  if (process.env[RELAUNCHED_VARIABLE] !== '1' || !process.channel) return false;
  // Processes this one starts are not the relauncher's children.
  delete process.env[RELAUNCHED_VARIABLE];
  const stop = (): void => {
    process.kill(process.pid, 'SIGKILL');
  };
  process.once('disconnect', stop);
  process.channel.unref();
  if (!process.connected) stop();
  return true;
}
