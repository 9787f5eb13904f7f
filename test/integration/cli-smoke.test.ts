// The `crepe` command as a user runs it (bin/crepe.js in a child process): --help answers, and a
// refusal is one "crepe:" line with exit code 2 and no stack trace. Everything else about the
// command line runs in process (test/cli/, through main()).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { REPO_ROOT, WIKITEXT_TEST } from '../helpers/shared.ts';
import { builtCrepeBin, scratchDir, storiesModelDir } from '../helpers/stories.ts';

const run = (...args: string[]) => spawnSync(process.execPath, [builtCrepeBin(), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });

describe('crepe as a program', () => {
  let model = '';
  before(async () => {
    model = await storiesModelDir();
  });

  it('crepe --help: exit 0, the commands on stdout', () => {
    const result = run('--help');
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
    for (const command of ['convert', 'inspect', 'eval', 'prune', 'search']) assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'));
  });

  it('a refusal: exit 2, one "crepe:" line naming the option, no stack trace', () => {
    const result = run('eval', model, '--eval-ppl', WIKITEXT_TEST, '--seqlen', '100000');
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, "crepe: --seqlen 100000 is longer than the model's context of 512 tokens (max_position_embeddings in config.json)\n");
  });

  it('a missing input: exit 2, one line naming the path', () => {
    const missing = path.join(scratchDir('missing'), 'nothing.gguf');
    const result = run('convert', missing, '--out', path.join(scratchDir('out'), 'x'));
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`^crepe: ${missing}: .*no such file.*\\n$`));
  });
});
