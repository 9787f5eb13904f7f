/**
 * The `crepe` command line: `main(argv, io)` parses the arguments, runs one command through the
 * library and returns the exit code. Each subcommand lives in its own file and loads the library
 * (and ONNX Runtime) only when it runs, so --help and option errors answer at once.
 *
 * Exit codes: 0 success; 2 a problem the user can fix (bad option, bad or missing file, a refusal),
 * shown as one `crepe: …` line; 1 a bug in crepe, shown with its stack trace.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.ts';
import { crepeVersion } from '../util/version.ts';
import * as convertCommand from './convert.ts';
import * as inspectCommand from './inspect.ts';
import * as evalCommand from './eval.ts';
import * as pruneCommand from './prune.ts';
import * as searchCommand from './search.ts';
import { releaseHeldLocks } from '../io/output-lock.ts';
import { removePendingTemporaries } from '../io/atomic.ts';
import { interruption, type CliIo } from './options.ts';
import { shortenQuoted, userMessage } from './messages.ts';
import { commandHelpText } from './examples.ts';
import { followRelauncher, relaunchForHugePages } from './relaunch.ts';

const ENVIRONMENT_HELP = `
Environment:
  CREPE_HUGE_PAGES=0     do not start again with glibc's transparent-huge-page
                         tunable (crepe does where THP is "madvise"; README, Speed)
  CREPE_QUIET=1          no progress lines on stderr
  CREPE_TASK_DIR         default for --task-dir (zero-shot task files)
  HF_HUB_CACHE, HF_HOME  Hugging Face cache (model ids resolve there), as in
                         huggingface_hub; HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE too`;

function program(io: CliIo, argv: readonly string[]): Command {
  const root = new Command()
    .name('crepe')
    .description('Post-training pruning of large language models (CRePE, PHO, Magnitude, Wanda, SparseGPT, RIA).')
    .version(crepeVersion())
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Commander's own errors (unknown option, bad choice, missing argument) follow crepe's rule:
      // one line naming the problem; `--help` shows the rest.
      outputError: (message, write) => write(`crepe: ${shortenQuoted(message.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' '))} (see --help)\n`),
    })
    .exitOverride()
    .addHelpText('after', ENVIRONMENT_HELP);
  for (const command of [convertCommand, inspectCommand, evalCommand, pruneCommand, searchCommand]) command.register(root, io, argv);
  for (const command of root.commands) command.addHelpText('after', commandHelpText(command.name()));
  return root;
}

/** An operating-system error (no such file, no permission, disk full) as one line naming its path. */
function systemErrorLine(error: NodeJS.ErrnoException): string {
  const reason = error.message.replace(/^E[A-Z]+: /, '').replace(/, \w+(?: '.*')?$/, '');
  return error.path ? `${error.path}: ${reason} (${error.code})` : error.message;
}

/** The exit code of a failed run, after telling the user why on stderr. */
function failure(error: unknown, io: CliIo): number {
  if (error instanceof UserError) {
    // One line, whatever the message quotes (a corrupt file's text may hold line breaks).
    io.stderr.write(`crepe: ${userMessage(error).replace(/\s*[\r\n]+\s*/g, ' ')}\n`);
    return 2;
  }
  // Commander has printed its message (or the help) already.
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    io.stderr.write(`crepe: ${systemErrorLine(error as NodeJS.ErrnoException)}\n`);
    return 2;
  }
  io.stderr.write(`crepe: internal error (a bug in crepe; please report it with this output)\n${(error as Error)?.stack ?? String(error)}\n`);
  return 1;
}

let stdoutWatched = false;
let stdoutFailed = false;

/**
 * A failed write to standard output (a full disk under `> results.json`) is one line and exit
 * code 2 instead of Node's unhandled-error trace; a reader that stopped early (EPIPE: `| head`)
 * just ends the output. Progress and messages that cannot be written to standard error (`2> log`
 * on a full disk) are dropped rather than stopping the run.
 */
function watchStandardOutput(io: CliIo): void {
  if (io.stdout !== process.stdout || stdoutWatched) return;
  stdoutWatched = true;
  if (io.stderr === process.stderr) process.stderr.on('error', () => {});
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || stdoutFailed) return;
    stdoutFailed = true;
    io.stderr.write(`crepe: cannot write to standard output: ${error.message.replace(/^E[A-Z]+: /, '').replace(/, \w+$/, '')} (${error.code})\n`);
    process.exitCode = 2;
  });
}

/**
 * Ctrl-C (SIGINT) or kill (SIGTERM) of a command-line run: its locks are released, its unfinished
 * temporary outputs removed, one line says so (with how to continue an interrupted prune), and the
 * process exits with 128 + the signal's number. What the run committed stays. The handler stays installed and ignores repeats: a Ctrl-C
 * reaches a relaunched crepe twice (from the terminal and from its parent, cli/relaunch.ts), and
 * without a handler a repeat would end the process mid-exit with the signal's default action.
 */
function handleSignals(io: CliIo): void {
  if (io.stderr !== process.stderr || signalsHandled) return;
  signalsHandled = true;
  let stopping = false;
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15]] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      releaseHeldLocks();
      removePendingTemporaries();
      const note = interruption.note?.();
      io.stderr.write(`\ncrepe: ${signal === 'SIGINT' ? 'interrupted' : 'terminated'} (${signal})${note ? `; ${note}` : ''}\n`);
      process.exit(128 + number);
    });
  }
}
let signalsHandled = false;

/** Runs the command line `argv` (the arguments after `crepe`) and returns its exit code. */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  followRelauncher();
  watchStandardOutput(io);
  handleSignals(io);
  try {
    const root = program(io, argv);
    // `crepe prnue --help`: refused as an unknown command (with Commander's suggestion), not answered with the general help.
    const known = new Set(['help', ...root.commands.map((command) => command.name())]);
    const args = argv[0] !== undefined && !argv[0].startsWith('-') && !known.has(argv[0]) ? argv.filter((a) => a !== '--help' && a !== '-h') : argv;
    await root.parseAsync([...args], { from: 'user' });
    return stdoutFailed ? 2 : 0;
  } catch (error) {
    return failure(error, io);
  }
}

// `node src/cli/main.ts …` (npm run crepe) runs the command line, relaunched for huge pages where
// that applies (as bin/crepe.js does); importing this module does not.
function isEntryPoint(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
if (isEntryPoint()) process.exitCode = await relaunchForHugePages(process.argv.slice(2)) ?? await main(process.argv.slice(2));
