// CRePE configuration files: what is accepted, and a UserError naming the problem for everything else.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CREPE_CONFIG_FORMAT, DEFAULT_CREPE_CONFIG_PATH, loadCrepeConfig, parseCrepeConfig } from '../../src/search/crepe-config.ts';
import { UserError } from '../../src/util/errors.ts';

const valid = {
  format: 'crepe-config/1',
  k: 5,
  alpha: 1,
  beta: 0.4,
  gamma: 2.5,
  a: 0.75,
  variant: 'smooth',
  border: 'mean',
  provenance: { model: 'stories260K', strategy: 'pho', proxy: 'gini-ref', proxySign: 1 },
};

/** Expects parseCrepeConfig to throw a UserError whose message names the source and matches `problem`. */
function refuses(json: unknown, problem: RegExp): void {
  assert.throws(
    () => parseCrepeConfig(json, 'found.json'),
    (error: unknown) => {
      assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
      assert.match(error.message, /^found\.json: /);
      assert.match(error.message, problem);
      return true;
    },
  );
}

describe('parseCrepeConfig accepts', () => {
  test('a full configuration, with its provenance', () => {
    assert.deepEqual(parseCrepeConfig(valid, 'found.json'), { ...valid, format: CREPE_CONFIG_FORMAT });
  });

  test('the minimal k, alpha, beta, gamma: format, a, variant and border take their defaults', () => {
    assert.deepEqual(parseCrepeConfig({ k: 1, alpha: 0, beta: 0, gamma: 3 }, 'found.json'), {
      format: 'crepe-config/1',
      k: 1,
      alpha: 0,
      beta: 0,
      gamma: 3,
      a: 0.5,
      variant: 'normalized',
      border: 'zero',
      provenance: undefined,
    });
  });

  test('the shipped default configuration', () => {
    const config = loadCrepeConfig(DEFAULT_CREPE_CONFIG_PATH);
    assert.equal(config.format, CREPE_CONFIG_FORMAT);
    assert.ok(Number.isInteger(config.k) && config.k >= 1 && config.k % 2 === 1);
    assert.ok(config.alpha + config.beta + config.gamma > 0);
    assert.equal(typeof config.provenance, 'object');
  });
});

describe('parseCrepeConfig refuses', () => {
  test('anything but an object', () => {
    for (const json of [null, 3, 'k=3', [valid]]) refuses(json, /expected a JSON object with k, alpha, beta, gamma/);
  });

  test('an unknown field: a misspelt parameter would stay at its default', () => {
    refuses({ ...valid, gama: 2 }, /: gama is not a field of a CRePE configuration; did you mean gamma\?$/);
    refuses({ ...valid, colour: 2 }, /: colour is not a field of a CRePE configuration; expected some of format, k, alpha, beta, gamma, a, variant, border, provenance$/);
  });

  test('a missing k (or alpha, beta, gamma)', () => {
    for (const key of ['k', 'alpha', 'beta', 'gamma']) {
      const { [key as 'k']: _dropped, ...rest } = valid;
      refuses(rest, new RegExp(`"${key}" is missing`));
    }
  });

  test('k even, k < 1, non-integer k', () => {
    refuses({ ...valid, k: 4 }, /k \(the neighbourhood window size\) must be an odd integer in \[1, 63\], got 4/);
    refuses({ ...valid, k: 0 }, /must be an odd integer in \[1, 63\], got 0/);
    refuses({ ...valid, k: -3 }, /must be an odd integer in \[1, 63\], got -3/);
    refuses({ ...valid, k: 2.5 }, /must be an odd integer in \[1, 63\], got 2.5/);
  });

  test('negative or non-finite coefficients', () => {
    refuses({ ...valid, alpha: -1 }, /alpha must be a finite number ≥ 0, got -1/);
    refuses({ ...valid, beta: -0.5 }, /beta must be a finite number ≥ 0, got -0.5/);
    refuses({ ...valid, gamma: -2 }, /gamma must be a finite number ≥ 0, got -2/);
    refuses({ ...valid, gamma: Infinity }, /gamma must be a finite number ≥ 0, got Infinity/);
  });

  test('all-zero coefficients', () => {
    refuses({ ...valid, alpha: 0, beta: 0, gamma: 0 }, /alpha, beta and gamma are all zero/);
  });

  test('a wrong format string', () => {
    refuses({ ...valid, format: 'crepe-config/2' }, /unknown format "crepe-config\/2", expected "crepe-config\/1"/);
  });

  test('non-number fields', () => {
    refuses({ ...valid, k: '3' }, /"k" must be a number, got "3"/);
    refuses({ ...valid, alpha: null }, /"alpha" must be a number, got null/);
    refuses({ ...valid, beta: [1] }, /"beta" must be a number, got \[1\]/);
    refuses({ ...valid, gamma: true }, /"gamma" must be a number, got true/);
    refuses({ ...valid, a: '0.5' }, /"a" must be a number, got "0.5"/);
  });

  test('an unknown variant or border, a provenance that is not an object', () => {
    refuses({ ...valid, variant: 'box' }, /variant must be "normalized" or "smooth", got "box"/);
    refuses({ ...valid, border: 'reflect' }, /border must be "zero" or "mean", got "reflect"/);
    refuses({ ...valid, provenance: 'pho' }, /"provenance" must be an object/);
  });
});

describe('loadCrepeConfig', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'crepe-config-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('reads a valid file', () => {
    const file = path.join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify(valid));
    assert.deepEqual(loadCrepeConfig(file), valid);
  });

  test('malformed JSON → UserError naming the file', () => {
    const file = path.join(dir, 'broken.json');
    writeFileSync(file, '{"k": 3, "alpha": 1,');
    assert.throws(() => loadCrepeConfig(file), (error: unknown) => error instanceof UserError && error.message.startsWith(`${file}: not valid JSON`));
  });

  test('an invalid configuration → UserError naming the file', () => {
    const file = path.join(dir, 'even.json');
    writeFileSync(file, JSON.stringify({ ...valid, k: 2 }));
    assert.throws(() => loadCrepeConfig(file), (error: unknown) => error instanceof UserError && error.message.startsWith(`${file}: k `));
  });

  test('a missing file → UserError', () => {
    const file = path.join(dir, 'absent.json');
    assert.throws(() => loadCrepeConfig(file), (error: unknown) => error instanceof UserError && /absent\.json: no such CRePE configuration file/.test(error.message));
  });
});
