/**
 * The package as a user gets it: compile src/ into a staging copy of the package, `npm pack` it,
 * install the tarball into an empty folder offline from the local npm cache (the versions of the
 * repository's package-lock.json, which `npm ci` put there), then run the installed `crepe` and
 * import the library by its package name.
 *
 * The build goes to the staging copy, not to the repository's dist/, so the spawned-CLI tests that
 * run at the same time never see dist/ half-written. The install sets ONNXRUNTIME_NODE_INSTALL=skip,
 * the README's install command: without it onnxruntime-node's postinstall downloads the CUDA
 * provider from api.nuget.org on linux/x64 and the install fails offline.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { distStaleness } from '../helpers/built-cli.ts';
import { C4_SAMPLE, REPO_ROOT, STORIES_BIN, STORIES_TOK } from '../helpers/shared.ts';

const run = promisify(execFile);
const TSC = path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc');

interface PackageJson {
  name: string;
  version: string;
  license: string;
  main: string;
  types: string;
  exports: Record<string, unknown>;
  bin: Record<string, string>;
  files: string[];
  engines: Record<string, string>;
  dependencies: Record<string, string>;
}
interface LockEntry { dev?: boolean; [key: string]: unknown }

const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as PackageJson;
const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };

/** The environment of a nested npm: none of the variables an enclosing `npm test` exports, except where npm keeps its cache and configuration. */
function npmEnvironment(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_registry', 'npm_config_cafile']);
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if ((/^npm_/i.test(key) && !keep.has(key.toLowerCase())) || key === 'INIT_CWD') continue;
    env[key] = value;
  }
  env.ONNXRUNTIME_NODE_INSTALL = 'skip';
  // `#!/usr/bin/env node` in the installed bin finds this node first.
  env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${env.PATH ?? ''}`;
  return env;
}

async function npm(args: string[], cwd: string): Promise<string> {
  try {
    return (await run('npm', args, { cwd, env: npmEnvironment(), maxBuffer: 64 << 20 })).stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}${stderr ?? ''}`);
  }
}

describe(`npm pack → install offline → crepe --help and import('${pkg.name}')`, { timeout: 420_000 }, () => {
  let root: string;
  let packed: string[];
  let consumer: string;

  before(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'crepe-pack-'));
    const stage = path.join(root, 'stage');
    mkdirSync(stage);
    for (const entry of ['package.json', '.npmignore', ...pkg.files.filter((f) => f !== 'dist')]) {
      cpSync(path.join(REPO_ROOT, entry), path.join(stage, entry), { recursive: true });
    }
    if (distStaleness() === null) {
      // npm test has just built dist/ (pretest).
      cpSync(path.join(REPO_ROOT, 'dist'), path.join(stage, 'dist'), { recursive: true });
    } else {
      try {
        await run(process.execPath, [TSC, '-p', path.join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', path.join(stage, 'dist')], { cwd: REPO_ROOT });
      } catch (error) {
        throw new Error(`the build failed:\n${(error as { stdout?: string }).stdout ?? String(error)}`);
      }
    }

    // The staging copy already holds dist/, so prepack's build (which needs src/) is skipped.
    const [report] = JSON.parse(await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', root], stage)) as
      Array<{ filename: string; files: Array<{ path: string }> }>;
    packed = report.files.map((f) => f.path);
    const tarball = path.join(root, report.filename);

    // An empty project whose lock pins the tarball's dependencies to the repository's versions, so
    // that `npm ci --offline` needs only the tarballs in the cache (no registry metadata).
    consumer = path.join(root, 'consumer');
    mkdirSync(consumer);
    const spec = `file:${path.relative(consumer, tarball)}`;
    const packages: Record<string, unknown> = {
      '': { name: 'consumer', dependencies: { [pkg.name]: spec } },
      [`node_modules/${pkg.name}`]: {
        version: pkg.version, resolved: spec, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines,
      },
    };
    for (const [key, entry] of Object.entries(lock.packages)) if (key !== '' && !entry.dev) packages[key] = entry;
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { [pkg.name]: spec } }));
    writeFileSync(path.join(consumer, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }));
    await npm(['ci', '--offline', '--no-audit', '--no-fund'], consumer);
  });

  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('packs the compiled library, the bin, the default config, README and LICENSE, and no sources, tests or results', () => {
    for (const file of ['package.json', 'README.md', 'LICENSE', 'bin/crepe.js', 'configs/crepe-default.json', 'configs/crepe-50.json', 'configs/crepe-2of4.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/cli/relaunch.js']) {
      assert.ok(packed.includes(file), `${file} is not in the tarball`);
    }
    const stray = packed.filter((file) => !/^(dist|bin|configs)\//.test(file) && !['package.json', 'README.md', 'LICENSE'].includes(file));
    assert.deepEqual(stray, []);
    assert.deepEqual(packed.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')), []);
  });

  it('installs a `crepe` command that runs the compiled JavaScript', async () => {
    const bin = path.join(consumer, 'node_modules/.bin/crepe');
    assert.ok(existsSync(bin), 'node_modules/.bin/crepe is missing');
    const { stdout } = await run(bin, ['--help'], { cwd: consumer, env: npmEnvironment() });
    assert.match(stdout, /^Usage: crepe /);
    for (const command of ['convert', 'eval', 'prune', 'search', 'inspect']) assert.match(stdout, new RegExp(`^  ${command} `, 'm'), command);
    const version = await run(bin, ['--version'], { cwd: consumer, env: npmEnvironment() });
    assert.equal(version.stdout.trim(), pkg.version);
    const installed = path.join(consumer, 'node_modules', pkg.name);
    assert.ok(!existsSync(path.join(installed, 'node_modules/tsx')) && !existsSync(path.join(consumer, 'node_modules/tsx')), 'tsx was installed');
  });

  it('converts and prunes stories260K with the installed command: ONNX Runtime and the default CRePE config load from the package', async () => {
    const bin = path.join(consumer, 'node_modules/.bin/crepe');
    const model = path.join(root, 'stories260K');
    const pruned = path.join(root, 'stories260K-crepe');
    await run(bin, ['convert', STORIES_BIN, '--tokenizer', STORIES_TOK, '--out', model], { cwd: consumer, env: npmEnvironment() });
    await run(bin, ['prune', model, '--method', 'crepe', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--nsamples', '4', '--seqlen', '64', '--out', pruned],
      { cwd: consumer, env: { ...npmEnvironment(), CREPE_QUIET: '1' } });
    const report = JSON.parse(readFileSync(path.join(pruned, 'crepe-report.json'), 'utf8')) as
      { settings: { crepe: Record<string, unknown> }; totals: { linearSparsity: number } };
    const shipped = JSON.parse(readFileSync(path.join(REPO_ROOT, 'configs/crepe-50.json'), 'utf8')) as Record<string, unknown>;
    for (const key of ['k', 'alpha', 'beta', 'gamma', 'a', 'variant', 'border']) assert.equal(report.settings.crepe[key], shipped[key], key);
    assert.ok(Math.abs(report.totals.linearSparsity - 0.5) < 0.01, `linear sparsity ${report.totals.linearSparsity}`);

    // PHO's evaluator threads load the compiled modules too (no TypeScript loader is installed).
    const searched = path.join(root, 'stories260K-search');
    await run(bin, ['search', model, '--strategy', 'pho', '--sparsity', '0.5', '--calib', C4_SAMPLE, '--nsamples', '4', '--seqlen', '64',
      '--crepe-k', '1,3', '--budget', '2', '--threads', '2', '--out', searched], { cwd: consumer, env: { ...npmEnvironment(), CREPE_QUIET: '1' } });
    const config = JSON.parse(readFileSync(path.join(searched, 'crepe-config.json'), 'utf8')) as { k: number; provenance: { kSet: number[] } };
    assert.deepEqual(config.provenance.kSet, [1, 3]);
    assert.ok([1, 3].includes(config.k), `k ${config.k}`);
  });

  it(`exports the library by package name, the same names and kinds as src/index.ts`, async () => {
    const probe = `const m = await import(${JSON.stringify(pkg.name)});
      console.log(JSON.stringify(Object.fromEntries(Object.keys(m).sort().map((k) => [k, typeof m[k]]))));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: consumer });
    const installed = JSON.parse(stdout) as Record<string, string>;
    const source = await import('../../src/index.ts') as Record<string, unknown>;
    const expected = Object.fromEntries(Object.keys(source).sort().map((k) => [k, typeof source[k]]));
    assert.deepEqual(installed, expected);
    for (const name of ['convertModel', 'evaluatePerplexity', 'pruneModel', 'searchCoefficients', 'inspectModel']) {
      assert.equal(installed[name], 'function', name);
    }
  });

  it('gives TypeScript users the declarations through `exports`', async () => {
    // A wrong argument must be an error: declarations that failed to resolve would type it as any.
    writeFileSync(path.join(consumer, 'use.ts'), [
      `import { pruneModel } from ${JSON.stringify(pkg.name)};`,
      '// @ts-expect-error a number is not a prune request',
      'void pruneModel(42);',
      '',
    ].join('\n'));
    // The declarations are checked too (skipLibCheck off, TypeScript's default), with no global
    // types (`types: []`, as a project listing only its own): they must not reach into a
    // dependency's types that need globals (onnx-proto's `Long`) or into @types/node.
    writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { noEmit: true, strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: false, types: [] },
      files: ['use.ts'],
    }));
    try {
      await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: consumer });
    } catch (error) {
      assert.fail(`tsc on a consumer file failed:\n${(error as { stdout?: string }).stdout ?? String(error)}`);
    }
  });
});
