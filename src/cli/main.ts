/**
 * The `crepe` command line. Each subcommand lives in its own file and registers itself here;
 * this file only wires them up and turns user errors into one clear line and exit code 2.
 */
import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.ts';

const program = new Command()
  .name('crepe')
  .description('Post-training pruning of large language models (CRePE, PHO, Magnitude, Wanda, SparseGPT, RIA).')
  .configureOutput({
    // Commander's own errors (unknown option, bad choice, missing argument) follow crepe's rule:
    // one line naming the problem; `--help` shows the rest.
    outputError: (message, write) => write(`crepe: ${message.replace(/^error: /, '').trimEnd()} (see --help)\n`),
  })
  .exitOverride();

const commands = ['convert', 'inspect', 'eval', 'prune', 'search'];
for (const name of commands) {
  try {
    const mod = (await import(`./${name}.ts`)) as { register: (p: Command) => void };
    mod.register(program);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
  }
}

function fail(error: unknown): never {
  if (error instanceof UserError) {
    process.stderr.write(`crepe: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  throw error;
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  fail(error);
}
