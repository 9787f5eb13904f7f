// The record of the shipped defaults' selection (results/defaults/selection.json): its held-out C4
// documents are drawn by no calibration seed it names — neither the statistics windows of the selection
// (10–19) and the acceptance (3–5) nor `--auto`'s confirmation windows, which continue the same draw —
// and its seeds and texts leave out what reports results (WikiText-2 test, seeds 3–5): its Wikipedia
// text is WikiText-2 validation, a file other than the test one. The confirm seeds,
// which every shipped configuration other than the RIA point must also pass, are fresh: none is a
// screen, decide or acceptance seed, and none draws a held-out document.
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
    heldOut: {
      ptb: { file: string };
      c4: { file: string; windows: number; excludedSeeds: number[]; excludedDraws: number };
      wikitext: { source: string; sha256: string };
    };
  };
  heldOutC4: { documents: number[] };
  targets: Record<string, { chosen: string; confirmSeeds: number[]; confirmed: Array<{ name: string; qualifies: boolean }> }>;
}

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

  test('the confirm seeds are fresh and draw no held-out document; every shipped configuration but the RIA point was confirmed on them', async () => {
    const { calibration, screenSeeds, decideSeeds, confirm } = record.settings;
    const tokenizer = TextTokenizer.load(await storiesModelDir());
    const encode = (text: string) => tokenizer.encode(text, { bos: true });
    const heldOutDocs = new Set(record.heldOutC4.documents);
    for (const [name, target] of Object.entries(record.targets)) {
      assert.equal(target.confirmSeeds.length, confirm.count, name);
      for (const seed of target.confirmSeeds) {
        assert.ok(seed >= confirm.fromSeed && ![3, 4, 5, ...screenSeeds, ...decideSeeds].includes(seed), `${name}: seed ${seed}`);
        const { draws } = sampleCalibrationFile(C4_SAMPLE, encode, { nsamples: confirm.draws, seqlen: calibration.seqlen, seed });
        for (const [doc] of draws) assert.ok(!heldOutDocs.has(doc), `${name}: confirm seed ${seed} draws held-out document ${doc}`);
      }
      if (target.chosen !== 'ria-point') assert.ok(target.confirmed.some((c) => c.name === target.chosen && c.qualifies), `${name}: ${target.chosen} was not confirmed`);
    }
  });
});
