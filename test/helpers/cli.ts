/**
 * The `crepe` command line run in this process (`main(argv, io)` from src/cli/main.ts), with its
 * stdout and stderr captured: what the bad-input and option tests use instead of spawning.
 */
import { main } from '../../src/cli/main.ts';

export interface CliRun {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `crepe <args…>`; progress is off unless `progress` is true. */
export async function runCli(args: readonly string[], opts: { progress?: boolean } = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    progress: opts.progress ?? false,
  });
  return { status, stdout, stderr };
}
