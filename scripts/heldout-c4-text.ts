/**
 * Held-out C4 as two plain-text files, for searches and evaluations that must not see the
 * calibration windows: the documents of the bundled C4 sample that calibration `--seed` does not
 * draw in its first `--draws` draws of `--seqlen` tokens (so neither its statistics windows nor a
 * confirmation's continued draw), in file order, split in two halves joined by blank lines: the
 * first half to `--valid` (a search's objective), the second to `--test` (for reporting).
 * `--exclude-selection` also leaves out the documents whose windows score the shipped defaults'
 * selection (results/defaults/selection.json, `heldOutC4.documents`), so that a search on `--valid`
 * never sees the selection's text.
 *
 *   node --import tsx scripts/heldout-c4-text.ts --model DIR [--seed 0] [--draws 128] [--seqlen 256] [--exclude-selection] --valid F --test F
 */
import { readFileSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { sampleCalibrationFile } from '../src/data/calibration.ts';
import { readJsonlDocuments } from '../src/data/text-sources.ts';
import { TextTokenizer } from '../src/model/tokenizer.ts';
import { C4_SAMPLE, REPO_ROOT } from '../test/helpers/shared.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' }, seed: { type: 'string', default: '0' }, draws: { type: 'string', default: '128' },
    seqlen: { type: 'string', default: '256' }, valid: { type: 'string' }, test: { type: 'string' },
    'exclude-selection': { type: 'boolean', default: false },
  },
});
if (!values.model || !values.valid || !values.test) throw new Error('--model DIR --valid FILE --test FILE are needed');
const tokenizer = TextTokenizer.load(values.model);
const encode = (text: string) => tokenizer.encode(text);
const opts = { nsamples: Number(values.draws), seqlen: Number(values.seqlen), seed: Number(values.seed) };
const drawn = new Set(sampleCalibrationFile(C4_SAMPLE, encode, opts).draws.map(([doc]) => doc));
const selectionDocuments: number[] = values['exclude-selection']
  ? (JSON.parse(readFileSync(`${REPO_ROOT}/results/defaults/selection.json`, 'utf8')) as { heldOutC4: { documents: number[] } }).heldOutC4.documents
  : [];
for (const doc of selectionDocuments) drawn.add(doc);
const kept = readJsonlDocuments(C4_SAMPLE).filter((_, doc) => !drawn.has(doc));
const half = Math.floor(kept.length / 2);
writeFileSync(values.valid, kept.slice(0, half).join('\n\n'));
writeFileSync(values.test, kept.slice(half).join('\n\n'));
console.log(`${drawn.size} documents left out (drawn by seed ${opts.seed} in ${opts.nsamples} draws${selectionDocuments.length ? `, or among the selection's ${selectionDocuments.length}` : ''}); ${half} documents to ${values.valid}, ${kept.length - half} to ${values.test}`);
