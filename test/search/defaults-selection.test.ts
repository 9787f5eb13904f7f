// The record of the shipped defaults' selection (results/defaults/selection.json): its held-out C4
// documents are drawn by no calibration seed it names — neither the statistics windows of the selection
// (10–19) and the acceptance (3–5) nor `--auto`'s confirmation windows, which continue the same draw —
// and its seeds and texts leave out what reports results (WikiText-2 test, seeds 3–5): its Wikipedia
// text is WikiText-2 validation, a file other than the test one. The confirm seeds,
// which every shipped configuration other than the RIA point must also pass (or, where none passed,
// the test stage's seeds), are fresh: none is a screen, decide or acceptance seed (nor, for the test
// seeds, a confirm seed), and none draws a held-out document. The test stage's paired t-test is
// recomputed from the record's per-seed perplexities.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import { TextTokenizer } from '../../src/model/tokenizer.ts';
import { autoExtraWindows } from '../../src/workflows/auto-crepe.ts';
import { C4_SAMPLE, REPO_ROOT, WIKITEXT_TEST } from '../helpers/shared.ts';
import { storiesModelDir } from '../helpers/stories.ts';

interface Selection {
  settings: {
    calibration: { nsamples: number; seqlen: number };
    screenSeeds: number[];
    decideSeeds: number[];
    confirm: { fromSeed: number; count: number; draws: number };
    test: { fromSeed: number; count: number; draws: number; tQuantile: number };
    heldOut: {
      ptb: { file: string };
      c4: { file: string; windows: number; excludedSeeds: number[]; excludedDraws: number };
      wikitext: { source: string; sha256: string };
    };
  };
  heldOutC4: { documents: number[] };
  targets: Record<string, {
    chosen: string; confirmSeeds: number[]; confirmed: Array<{ name: string; qualifies: boolean }>;
    testSeeds?: number[]; tested?: { name: string; meanD: number; stdD: number; t: number; wins: number; perTextMeanD: Record<string, number>; passes: boolean } | null;
    riaPoint: { ppl: Record<string, TextPpl> };
    finalists: Array<{ name: string; perTextMeanD: Record<string, number>; meanD: number; ppl: Record<string, TextPpl> }>;
  }>;
}
type TextPpl = { ptb: number; c4: number; wiki: number };

const record = JSON.parse(readFileSync(path.join(REPO_ROOT, 'results/defaults/selection.json'), 'utf8')) as Selection;

describe('defaults selection record', () => {
  test('no acceptance seed or test text among what chose the defaults', () => {
    const { screenSeeds, decideSeeds, heldOut } = record.settings;
    for (const seed of [3, 4, 5]) assert.ok(!screenSeeds.includes(seed) && !decideSeeds.includes(seed), `seed ${seed}`);
    assert.ok(!screenSeeds.some((s) => decideSeeds.includes(s)), 'the decide seeds are fresh');
    assert.match(heldOut.ptb.file, /ptb\.valid\.txt$/);
    assert.match(heldOut.wikitext.source, /wikitext-2\/valid\.txt.*WikiText-2 validation/);
    assert.notEqual(heldOut.wikitext.sha256, createHash('sha256').update(readFileSync(WIKITEXT_TEST)).digest('hex'));
    assert.doesNotMatch(JSON.stringify(heldOut), /test\.(raw|txt)|wiki\.test/);
  });

  test('the held-out C4 documents are drawn by none of the excluded seeds, statistics and --auto confirmation windows alike', async () => {
    const { calibration, screenSeeds, decideSeeds, heldOut } = record.settings;
    const { excludedSeeds, excludedDraws } = heldOut.c4;
    for (const seed of [3, 4, 5, ...screenSeeds, ...decideSeeds]) assert.ok(excludedSeeds.includes(seed), `seed ${seed} is not excluded`);
    assert.ok(excludedDraws >= calibration.nsamples + autoExtraWindows({}), `${excludedDraws} draws do not cover --auto's continued draw`);
    const tokenizer = TextTokenizer.load(await storiesModelDir());
    const encode = (text: string) => tokenizer.encode(text, { bos: true });
    const heldOutDocs = new Set(record.heldOutC4.documents);
    assert.ok(heldOutDocs.size >= heldOut.c4.windows / 2, `${heldOutDocs.size} documents`);
    let drawn = 0;
    for (const seed of excludedSeeds) {
      const { draws } = sampleCalibrationFile(C4_SAMPLE, encode, { nsamples: excludedDraws, seqlen: calibration.seqlen, seed });
      for (const [doc] of draws) assert.ok(!heldOutDocs.has(doc), `seed ${seed} draws held-out document ${doc}`);
      drawn += draws.length;
    }
    assert.equal(drawn, excludedSeeds.length * excludedDraws);
  });

  test('the confirm and test seeds are fresh and draw no held-out document; every shipped configuration but the RIA point was confirmed on them or passed the test', async () => {
    const { calibration, screenSeeds, decideSeeds, confirm, test: testStage } = record.settings;
    const tokenizer = TextTokenizer.load(await storiesModelDir());
    const encode = (text: string) => tokenizer.encode(text, { bos: true });
    const heldOutDocs = new Set(record.heldOutC4.documents);
    // Every target records the same seeds: each seed's draws are checked once.
    const checked = new Set<string>();
    const checkFresh = (name: string, seeds: number[], stage: { fromSeed: number; count: number; draws: number }, used: number[]) => {
      assert.equal(seeds.length, stage.count, name);
      for (const seed of seeds) {
        assert.ok(seed >= stage.fromSeed && ![3, 4, 5, ...screenSeeds, ...decideSeeds, ...used].includes(seed), `${name}: seed ${seed}`);
        if (checked.has(`${seed}/${stage.draws}`)) continue;
        checked.add(`${seed}/${stage.draws}`);
        const { draws } = sampleCalibrationFile(C4_SAMPLE, encode, { nsamples: stage.draws, seqlen: calibration.seqlen, seed });
        for (const [doc] of draws) assert.ok(!heldOutDocs.has(doc), `${name}: seed ${seed} draws held-out document ${doc}`);
      }
    };
    for (const [name, target] of Object.entries(record.targets)) {
      checkFresh(name, target.confirmSeeds, confirm, []);
      if (target.tested) checkFresh(name, target.testSeeds!, testStage, target.confirmSeeds);
      const confirmed = target.confirmed.some((c) => c.name === target.chosen && c.qualifies);
      const tested = target.tested?.name === target.chosen && target.tested.passes;
      if (target.chosen !== 'ria-point') assert.ok(confirmed !== tested, `${name}: ${target.chosen} was neither confirmed nor tested, or both`);
    }
  });

  test('the test stage: its candidate is the finalist that loses no text on the decide seeds, and its t-test and per-text means follow from the per-seed perplexities', () => {
    const { decideSeeds, test: testStage } = record.settings;
    const texts = ['ptb', 'c4', 'wiki'] as const;
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    let testedTargets = 0;
    for (const [name, target] of Object.entries(record.targets)) {
      if (!target.tested) continue;
      testedTargets++;
      const eligible = target.finalists.filter((f) => texts.every((t) => f.perTextMeanD[t] < 0)).sort((a, b) => a.meanD - b.meanD);
      assert.equal(target.tested.name, eligible[0].name, name);
      const row = eligible[0];
      const ria = target.riaPoint.ppl;
      const logRatio = (s: number, t: (typeof texts)[number]) => Math.log(row.ppl[s][t]) - Math.log(ria[s][t]);
      const d = target.testSeeds!.map((s) => mean(texts.map((t) => logRatio(s, t))));
      const m = mean(d);
      const sd = Math.sqrt(d.reduce((a, x) => a + (x - m) ** 2, 0) / (d.length - 1));
      const t = m / (sd / Math.sqrt(d.length));
      assert.ok(Math.abs(m - target.tested.meanD) < 1e-12 && Math.abs(t - target.tested.t) < 1e-9, `${name}: mean ${m}, t ${t}`);
      assert.equal(target.tested.wins, d.filter((x) => x < 0).length);
      const perText = texts.map((text) => mean(target.testSeeds!.map((s) => logRatio(s, text))));
      perText.forEach((x, i) => assert.ok(Math.abs(x - target.tested!.perTextMeanD[texts[i]]) < 1e-12, `${name}: ${texts[i]}`));
      assert.equal(target.tested.passes, t < -testStage.tQuantile && perText.every((x) => x < 0), name);
      // The decide seeds judged which finalist is tested, never whether it passes.
      assert.ok(target.testSeeds!.every((s) => !decideSeeds.includes(s)), name);
    }
    assert.ok(testedTargets > 0, 'no target went to the test stage');
  });
});
