/**
 * The `crepe` command line. Each subcommand lives in its own file and registers itself here;
 * this file only wires them up and turns user errors into one clear line and exit code 2.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.ts';
import * as convertCommand from './convert.ts';
import * as inspectCommand from './inspect.ts';
import * as evalCommand from './eval.ts';
import * as pruneCommand from './prune.ts';
import * as searchCommand from './search.ts';
import { userMessage } from './options.ts';

function packageVersion(): string {
  const file = fileURLToPath(new URL('../../package.json', import.meta.url));
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

const program = new Command()
  .name('crepe')
  .description('Post-training pruning of large language models (CRePE, PHO, Magnitude, Wanda, SparseGPT, RIA).')
  .version(packageVersion())
  .configureOutput({
    // Commander's own errors (unknown option, bad choice, missing argument) follow crepe's rule:
    // one line naming the problem; `--help` shows the rest.
    outputError: (message, write) => write(`crepe: ${message.replace(/^error: /, '').trimEnd()} (see --help)\n`),
  })
  .exitOverride();

for (const command of [convertCommand, inspectCommand, evalCommand, pruneCommand, searchCommand]) command.register(program);

function fail(error: unknown): never {
  if (error instanceof UserError) {
    process.stderr.write(`crepe: ${userMessage(error)}\n`);
    process.exit(2);
  }
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  // Errors from the operating system (a path that does not exist, no permission, a full disk)
  // are the user's to fix: one line, like any other bad input.
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    process.stderr.write(`crepe: ${(error as Error).message}\n`);
    process.exit(2);
  }
  throw error;
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  fail(error);
}
