// `crepe --help` and every subcommand's --help exit 0 on stdout and name the options a user needs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crepe } from '../helpers/stories.ts';

/** Options each command's help must list (the ones issues #2–#5 name). */
const KEY_OPTIONS: Record<string, string[]> = {
  convert: ['--out', '--tokenizer', '--overwrite', '--json'],
  inspect: ['--pattern', '--json'],
  eval: ['--ppl', '--seqlen', '--max-chunks', '--json', '--device', '--threads'],
  prune: [
    '--method', '--sparsity', '--pattern', '--per-row', '--per-matrix', '--ria-a', '--config', '--calib', '--nsamples',
    '--seqlen', '--seed', '--true-sequential', '--owl', '--owl-lambda', '--dsnot', '--dsnot-skip', '--permute', '--out',
    '--overwrite', '--resume', '--eval-ppl', '--json', '--device', '--threads',
  ],
  search: ['--strategy', '--validate', '--calib', '--sparsity', '--pattern', '--k', '--budget', '--heldout', '--out', '--json', '--device', '--threads'],
};

describe('crepe --help', () => {
  it('lists every command', () => {
    const result = crepe('--help');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^Usage: crepe /);
    for (const command of Object.keys(KEY_OPTIONS)) assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'), command);
  });

  for (const [command, options] of Object.entries(KEY_OPTIONS)) {
    it(`crepe ${command} --help names ${options.length} key options`, () => {
      const result = crepe(command, '--help');
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, new RegExp(`^Usage: crepe ${command} `));
      for (const option of options) assert.match(result.stdout, new RegExp(`^\\s+${option}\\b`, 'm'), `${command}: ${option}`);
      if (command === 'prune') {
        const methods = /--method <name>\s+scoring method: (.*)/.exec(result.stdout)?.[1];
        assert.equal(methods, 'magnitude, wanda, sparsegpt, ria, crepe');
      }
    });
  }
});
