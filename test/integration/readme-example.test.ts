// The library example of README.md ("## Library") runs as written, against the package's source
// (src/index.ts for 'crepe-prune'), the shared data for '../shared/data' and a scratch folder for
// 'work/', and does what it says: a 50 % Wanda model with its report, and a FieldError naming seqlen.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { DATA, REPO_ROOT } from '../helpers/shared.ts';
import { scratchDir } from '../helpers/stories.ts';

test('README library example', async () => {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Library\n'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'README.md has a ```ts block under "## Library"');
  const work = scratchDir('readme');
  const runnable = code
    .replace("from 'crepe-prune'", `from ${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'src/index.ts')).href)}`)
    .replace("'../shared/data'", JSON.stringify(DATA))
    .replaceAll("'work/", `'${work}/`);
  assert.notEqual(runnable, code);
  const file = path.join(work, 'example.mts'); // an ES module wherever it lies (top-level await)
  writeFileSync(file, runnable);

  const logged: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => logged.push(args.join(' '));
  try {
    await import(pathToFileURL(file).href);
  } finally {
    console.log = log;
  }

  const out = path.join(work, 'stories260K-wanda-50');
  const report = JSON.parse(readFileSync(path.join(out, 'crepe-report.json'), 'utf8'));
  assert.equal(report.settings.method, 'wanda');
  assert.equal(report.totals.linearSparsity, 0.5);
  assert.equal(report.evaluation.windows, 40);
  assert.ok(existsSync(path.join(out, 'model.safetensors')));
  assert.ok(!existsSync(`${out}.crepe-partial`));
  assert.ok(logged.some((line) => /^prune wanda 50\.0% unstructured: linear sparsity 50\.000%$/.test(line)), logged.join('\n'));
  assert.ok(logged.includes(`linear sparsity 0.5, PPL ${report.evaluation.ppl}`), logged.join('\n'));
  assert.ok(logged.includes("seqlen: 4096 is longer than the model's context of 512 tokens (max_position_embeddings in config.json)"), logged.join('\n'));
});
