// `crepe --help` and every subcommand's --help exit 0 on stdout and name the options a user needs;
// the old spellings kept as aliases stay out of the help.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

/** Options each command's help must list. */
const KEY_OPTIONS: Record<string, string[]> = {
  convert: ['--out', '--tokenizer', '--overwrite', '--json'],
  inspect: ['--pattern', '--json'],
  eval: ['--eval-ppl', '--seqlen', '--max-chunks', '--json', '--device', '--threads'],
  prune: [
    '--method', '--sparsity', '--pattern', '--per-row', '--per-matrix', '--ria-a', '--config', '--crepe-k', '--crepe-a', '--calib',
    '--nsamples', '--seqlen', '--seed', '--true-sequential', '--owl', '--owl-lambda', '--dsnot', '--dsnot-skip', '--permute', '--out',
    '--overwrite', '--resume', '--eval-ppl', '--eval-seqlen', '--json', '--device', '--threads',
  ],
  search: [
    '--strategy', '--validate', '--calib', '--sparsity', '--pattern', '--crepe-k', '--crepe-a', '--crepe-variant', '--budget', '--race',
    '--eval-ppl', '--eval-seqlen', '--out', '--json', '--device', '--threads',
  ],
};

/** Old spellings that still work but are not shown. */
const HIDDEN: Record<string, string[]> = { eval: ['--ppl'], search: ['--k', '--a', '--variant', '--heldout', '--heldout-seqlen', '--heldout-max-chunks'] };

describe('crepe --help', () => {
  it('lists every command', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^Usage: crepe /);
    for (const command of Object.keys(KEY_OPTIONS)) assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'), command);
    // The variables crepe reads, each at the start of a line of the Environment section.
    const environment = result.stdout.slice(result.stdout.indexOf('\nEnvironment:\n'));
    assert.notEqual(environment, result.stdout, 'an Environment section');
    for (const name of ['CREPE_HUGE_PAGES', 'CREPE_QUIET', 'CREPE_TASK_DIR', 'HF_HUB_CACHE']) assert.match(environment, new RegExp(`^  ${name}\\b`, 'm'), name);
  });

  for (const [command, options] of Object.entries(KEY_OPTIONS)) {
    it(`crepe ${command} --help names ${options.length} key options`, async () => {
      const result = await runCli([command, '--help']);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, new RegExp(`^Usage: crepe ${command} `));
      for (const option of options) assert.match(result.stdout, new RegExp(`^\\s+${option}\\b`, 'm'), `${command}: ${option}`);
      for (const option of HIDDEN[command] ?? []) assert.doesNotMatch(result.stdout, new RegExp(`^\\s+${option}\\b`, 'm'), `${command}: ${option} is hidden`);
      if (command === 'prune') {
        const methods = /--method <name>\s+scoring method: (.*)/.exec(result.stdout)?.[1];
        assert.equal(methods, 'magnitude, wanda, sparsegpt, ria, crepe');
        // CRePE's coefficients default to the configuration in use: the help says so.
        for (const option of ['--crepe-k', '--crepe-alpha', '--crepe-beta', '--crepe-gamma', '--crepe-a', '--crepe-variant']) {
          const described = new RegExp(`^\\s+${option} <\\w+>\\s+([^]*?)(?=\\n\\s+--)`, 'm').exec(result.stdout)?.[1].replace(/\s+/g, ' ');
          assert.match(described ?? '', /default: the configuration's/, `${option}: ${described}`);
        }
      }
    });
  }

  it('each command\'s help ends with what it needs and examples whose every option is one of the command\'s own, in 80 columns', async () => {
    const optionsOf = async (command: string): Promise<Set<string>> =>
      new Set([...(await runCli([command, '--help'])).stdout.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]));
    for (const command of Object.keys(KEY_OPTIONS)) {
      const help = (await runCli([command, '--help'])).stdout;
      const after = help.slice(help.indexOf('\nRequired: '));
      assert.notEqual(after, help, `${command}: a Required line`);
      assert.match(after, /\nExamples:\n/, command);
      for (const line of after.split('\n')) assert.ok(line.length <= 80, `${command}: ${line.length} columns: ${line}`);
      const examples = [...after.matchAll(/^ {4}\$ (.*(?:\n {8}.*)*)/gm)].map((m) => m[1].replace(/\s*\\\n\s*/g, ' '));
      assert.ok(examples.length > 0, `${command}: examples`);
      for (const example of examples) {
        const [crepe, sub, ...words] = example.split(' ');
        assert.equal(crepe, 'crepe', example);
        assert.ok(sub in KEY_OPTIONS, `${example}: a crepe command`);
        const known = await optionsOf(sub);
        for (const flag of words.filter((w) => w.startsWith('--'))) assert.ok(known.has(flag), `${example}: ${flag} is not an option of crepe ${sub}`);
      }
    }
  });

  it('an unknown command with --help is refused as unknown (with the suggestion), not answered with the general help', async () => {
    for (const args of [['prnue', '--help'], ['prnue', 'model', '-h'], ['tasks', '--help']]) {
      const result = await runCli(args);
      assert.equal(result.status, 2, args.join(' '));
      assert.equal(result.stdout, '');
      assert.equal(result.stderr, `crepe: unknown command '${args[0]}'${args[0] === 'prnue' ? ' (Did you mean prune?)' : ''} (see --help)\n`);
    }
    assert.equal((await runCli(['help', 'prune'])).status, 0);
    assert.equal((await runCli(['prune', '--help'])).status, 0);
  });

  it('an unknown option: exit 2, one "crepe:" line pointing at --help', async () => {
    const result = await runCli(['inspect', 'model-dir', '--no-such-option']);
    assert.equal(result.status, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^crepe: unknown option '--no-such-option' \(see --help\)\n$/);
  });

  it('a misspelt option: the suggestion stays on the one "crepe:" line', async () => {
    const result = await runCli(['inspect', 'model-dir', '--patern', '2:4']);
    assert.equal(result.status, 2);
    assert.equal(result.stderr, "crepe: unknown option '--patern' (Did you mean --pattern?) (see --help)\n");
  });
});
