// The per-target CRePE defaults and `prune --method crepe --auto`: the lookup for every target, the
// RIA guard (a bad candidate never replaces the RIA point), held-out confirmation windows disjoint
// from the statistics windows (the whole auto run: test/integration/auto.test.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { defaultCrepeConfigFor, DEFAULT_TARGETS, isRiaPoint, RIA_POINT, withRiaPointNote, type DefaultTargetName } from '../../src/search/crepe-defaults.ts';
import { loadCrepeConfig } from '../../src/search/crepe-config.ts';
import { chooseByConfirmation, concatWindows, confirmationWindows } from '../../src/search/auto.ts';
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import type { CrepeParams } from '../../src/prune/scores/crepe.ts';
import { C4_SAMPLE, REPO_ROOT } from '../helpers/shared.ts';
import { FieldError } from '../../src/util/errors.ts';

const BAD: CrepeParams = { k: 9, alpha: 1, beta: 0.01, gamma: 50, a: 0.5, variant: 'normalized', border: 'zero' };
const GOOD: CrepeParams = { ...RIA_POINT, k: 3, gamma: 0.1 };

describe('per-target defaults', () => {
  const cases: Array<[string, Parameters<typeof defaultCrepeConfigFor>[0], DefaultTargetName]> = [
    ['50 %', { kind: 'unstructured', sparsity: 0.5 }, '50'],
    ['30 % (below every default)', { kind: 'unstructured', sparsity: 0.3 }, '50'],
    ['55 % (a tie goes to the lower sparsity)', { kind: 'unstructured', sparsity: 0.55 }, '50'],
    ['56 %', { kind: 'unstructured', sparsity: 0.56 }, '60'],
    ['60 %', { kind: 'unstructured', sparsity: 0.6 }, '60'],
    ['70 %', { kind: 'unstructured', sparsity: 0.7 }, '70'],
    ['90 %', { kind: 'unstructured', sparsity: 0.9 }, '70'],
    ['2:4', { kind: 'nm', n: 2, m: 4 }, '2of4'],
    ['4:8', { kind: 'nm', n: 4, m: 8 }, '4of8'],
    ['1:4 (no default of its own: the N:M default of the nearest sparsity)', { kind: 'nm', n: 1, m: 4 }, '2of4'],
  ];
  for (const [label, target, name] of cases) {
    test(`${label} → configs/crepe-${name}.json`, () => {
      const found = defaultCrepeConfigFor(target);
      assert.equal(found.name, name);
      assert.equal(found.file, path.join(REPO_ROOT, 'configs', `crepe-${name}.json`));
    });
  }

  test('the reason names a target\'s own default, or the nearest sparsity\'s', () => {
    const reason = (target: Parameters<typeof defaultCrepeConfigFor>[0]) => defaultCrepeConfigFor(target).reason;
    assert.equal(reason({ kind: 'unstructured', sparsity: 0.7 }), 'the 0.7 default');
    assert.equal(reason({ kind: 'unstructured', sparsity: 0.55 }), 'the default of the nearest sparsity (0.5)');
    assert.equal(reason({ kind: 'unstructured', sparsity: 0.65 }), 'the default of the nearest sparsity (0.6)');
    assert.equal(reason({ kind: 'nm', n: 4, m: 8 }), 'the 4:8 default');
    assert.equal(reason({ kind: 'nm', n: 1, m: 4 }), 'the N:M default of the nearest sparsity (2:4)');
  });

  test('the RIA point: γ = 0, β/α = 1, a = 0.5 (coefficients matter only as ratios)', () => {
    assert.equal(isRiaPoint(RIA_POINT), true);
    assert.equal(isRiaPoint({ ...RIA_POINT, alpha: 2, beta: 2 }), true);
    assert.equal(isRiaPoint({ ...RIA_POINT, gamma: 0.01 }), false);
    assert.equal(isRiaPoint({ ...RIA_POINT, beta: 2 }), false);
    assert.equal(isRiaPoint({ ...RIA_POINT, a: 0.4 }), false);
  });

  test('a default that is the RIA point says so on the CRePE configuration line; another does not', () => {
    assert.equal(withRiaPointNote('the 2:4 default', RIA_POINT), 'the 2:4 default: the RIA point, since no searched configuration beat RIA robustly there (--auto searches this model)');
    assert.equal(withRiaPointNote('the 2:4 default', { ...RIA_POINT, alpha: 3, beta: 3 }), withRiaPointNote('the 2:4 default', RIA_POINT));
    assert.equal(withRiaPointNote('the 2:4 default', GOOD), 'the 2:4 default');
  });

  test('every shipped default exists, parses, and records a held-out multi-seed choice: a robust win over the RIA point, a win by a paired t-test on fresh seeds, or the RIA point itself', () => {
    for (const name of Object.keys(DEFAULT_TARGETS) as DefaultTargetName[]) {
      const file = path.join(REPO_ROOT, 'configs', `crepe-${name}.json`);
      assert.ok(existsSync(file), file);
      const config = loadCrepeConfig(file);
      const provenance = config.provenance as {
        target: string; criterion: string; chosen: string; decideSeeds: number[];
        pairedLogRatio: { mean: number; std: number; wins: number; seeds: number; t?: number } | null;
        testSeeds?: number[]; tested?: { name: string; perTextMeanD: Record<string, number>; passes: boolean };
      };
      assert.equal(provenance.target, DEFAULT_TARGETS[name].target);
      assert.match(provenance.criterion, /ptb\.valid/);
      // WikiText-2's validation split, never its test file (which reports the results).
      assert.match(provenance.criterion, /WikiText-2 validation/);
      assert.doesNotMatch(provenance.criterion, /wiki\.test|test\.(raw|txt)/);
      // Never the acceptance's calibration seeds.
      assert.ok(provenance.decideSeeds.length >= 6 && provenance.decideSeeds.every((s) => ![3, 4, 5].includes(s)), `${name}: ${provenance.decideSeeds}`);
      const params = { k: config.k, alpha: config.alpha, beta: config.beta, gamma: config.gamma, a: config.a };
      if (provenance.chosen === 'ria-point') {
        assert.equal(provenance.pairedLogRatio, null);
        assert.deepEqual(params, { k: RIA_POINT.k, alpha: RIA_POINT.alpha, beta: RIA_POINT.beta, gamma: RIA_POINT.gamma, a: RIA_POINT.a });
      } else if (provenance.pairedLogRatio?.t === undefined) {
        // Confirmed: most decide seeds won, by a margin larger than the spread.
        const r = provenance.pairedLogRatio!;
        assert.equal(r.seeds, provenance.decideSeeds.length);
        assert.ok(r.wins * 3 >= r.seeds * 2, `${name}: wins ${r.wins}/${r.seeds}`);
        assert.ok(r.mean < -r.std, `${name}: mean paired log ratio ${r.mean} not below -std ${-r.std}`);
      } else {
        // The test stage: a one-sided paired t-test at 5 % on 24 fresh seeds, and no held-out text lost.
        const r = provenance.pairedLogRatio;
        const { testSeeds, tested } = provenance;
        assert.equal(r.seeds, 24);
        assert.deepEqual(testSeeds?.length, r.seeds);
        assert.ok(testSeeds!.every((s) => ![3, 4, 5].includes(s) && !provenance.decideSeeds.includes(s)), `${name}: ${testSeeds}`);
        const t = r.mean / (r.std / Math.sqrt(r.seeds));
        assert.ok(Math.abs(t - r.t!) < 1e-9 && t < -1.7139, `${name}: t = ${t}`);
        assert.equal(tested?.name, provenance.chosen);
        assert.ok(tested.passes && Object.values(tested.perTextMeanD).every((d) => d < 0), `${name}: ${JSON.stringify(tested.perTextMeanD)}`);
      }
    }
  });
});

describe('auto: the RIA guard', () => {
  const ppl = new Map<string, number>([[JSON.stringify(RIA_POINT), 200], [JSON.stringify(BAD), 900], [JSON.stringify(GOOD), 190]]);
  const trial = async (params: CrepeParams) => ({ ppl: ppl.get(JSON.stringify(params)) ?? Number.NaN, seconds: 0 });

  test('a bad candidate with the best proxy objective is never chosen over the RIA point', async () => {
    const { chosen, candidates } = await chooseByConfirmation([{ source: 'pho k=9', params: BAD, objective: -5 }], trial);
    assert.equal(chosen.source, 'ria-point');
    assert.deepEqual(candidates.map((c) => [c.source, c.confirmationPpl]), [['ria-point', 200], ['pho k=9', 900]]);
  });

  test('a better candidate is chosen; a tie and NaN keep the RIA point', async () => {
    const better = await chooseByConfirmation([{ source: 'bad', params: BAD, objective: 1 }, { source: 'good', params: GOOD, objective: 2 }], trial);
    assert.equal(better.chosen.source, 'good');
    assert.equal(better.chosen.confirmationPpl, 190);
    const tie = await chooseByConfirmation([{ source: 'same', params: { ...RIA_POINT, k: 5 }, objective: 0 }], async () => ({ ppl: 200, seconds: 0 }));
    assert.equal(tie.chosen.source, 'ria-point');
    const nan = await chooseByConfirmation([{ source: 'nan', params: { ...GOOD, k: 7 }, objective: 0 }], trial);
    assert.equal(nan.chosen.source, 'ria-point');
  });
});

describe('auto: confirmation windows', () => {
  test('hand-made draws: overlapping ones (same document, starts closer than seqlen) are skipped', () => {
    const w = (v: number) => Int32Array.of(v, v, v, v);
    const all = {
      kind: 'documents' as const,
      windows: [w(0), w(1), w(2), w(3), w(4), w(5), w(6)],
      draws: [[5, 100], [7, 0], [5, 103], [5, 104], [7, 10], [7, 12], [9, 0]] as Array<[number, number]>,
    };
    // statistics: (5,100), (7,0); seqlen 4: (5,103) overlaps, (5,104) not, (7,10) not, (7,12) overlaps (7,10).
    const held = confirmationWindows(all, 2, 3, 4);
    assert.deepEqual(held.draws, [[5, 104], [7, 10], [9, 0]]);
    assert.deepEqual(held.windows.map((x) => x[0]), [3, 4, 6]);
    assert.deepEqual([...concatWindows(held.windows)], [3, 3, 3, 3, 4, 4, 4, 4, 6, 6, 6, 6]);
    // The draw runs out: fewer windows than asked for, none when nothing is left past the statistics.
    assert.deepEqual(confirmationWindows(all, 2, 10, 4).draws, [[5, 104], [7, 10], [9, 0]]);
    assert.deepEqual(confirmationWindows(all, 7, 3, 4).windows, []);
  });

  test('arguments that describe no draw are refused naming them (a count of 2.5 or −1, or nsamples past the set, returned fewer windows or none)', () => {
    const w = (v: number) => Int32Array.of(v, v, v, v);
    const all = { kind: 'documents' as const, windows: [w(0), w(1), w(2)], draws: [[0, 0], [0, 10], [1, 0]] as Array<[number, number]> };
    const refusal = (field: string, problem: string) => (e: unknown) => e instanceof FieldError && e.field === field && e.problem === problem;
    assert.throws(() => confirmationWindows(all, 1, 2.5, 4), refusal('count', 'must be an integer ≥ 1, got 2.5'));
    assert.throws(() => confirmationWindows(all, 1, -1, 4), refusal('count', 'must be an integer ≥ 1, got -1'));
    assert.throws(() => confirmationWindows(all, 5, 1, 4), refusal('nsamples', 'must be an integer in [0, 3], got 5'));
    assert.throws(() => confirmationWindows(all, -1, 1, 4), refusal('nsamples', 'must be an integer in [0, 3], got -1'));
    assert.throws(() => confirmationWindows(all, 1, 1, Number.NaN), refusal('seqlen', 'must be an integer ≥ 1, got NaN'));
    // seqlen 2 for windows of 4 tokens would miss overlaps of windows whose starts are 2 or 3 apart.
    assert.throws(() => confirmationWindows(all, 1, 1, 2), refusal('all.windows[0]', 'must be an Int32Array of seqlen = 2 tokens, got 4 tokens'));
    assert.throws(() => confirmationWindows({ ...all, draws: [] }, 1, 1, 4), refusal('all', 'must be a calibration set (windows with one draw each, as sampleCalibrationFile returns), got an object'));
    assert.throws(() => confirmationWindows(null as never, 1, 1, 4), refusal('all', 'must be a calibration set (windows with one draw each, as sampleCalibrationFile returns), got null'));
  });

  test('C4: the continued draw starts with the statistics windows, and the held-out windows overlap none of them', () => {
    const encode = (text: string) => Int32Array.from(Buffer.from(text, 'utf8'));
    const stats = sampleCalibrationFile(C4_SAMPLE, encode, { nsamples: 16, seqlen: 128, seed: 3 });
    const continued = sampleCalibrationFile(C4_SAMPLE, encode, { nsamples: 16 + 32, seqlen: 128, seed: 3 });
    assert.deepEqual(continued.draws.slice(0, 16), stats.draws);
    const held = confirmationWindows(continued, 16, 8, 128);
    assert.equal(held.windows.length, 8);
    const all = [...stats.draws, ...held.draws];
    for (let i = 0; i < all.length; i++) {
      for (let j = i + 1; j < all.length; j++) {
        assert.ok(!(all[i][0] === all[j][0] && Math.abs(all[i][1] - all[j][1]) < 128), `windows ${i} and ${j} overlap: ${all[i]} ${all[j]}`);
      }
    }
  });
});
