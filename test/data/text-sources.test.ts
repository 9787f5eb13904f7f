import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import {
  hfWikitextText,
  isWikitextRawFile,
  readEvalText,
  looksLikeJsonLines,
  readJsonlDocuments,
  readTextFile,
} from '../../src/data/text-sources.ts';
import { UserError } from '../../src/util/errors.ts';
import { C4_SAMPLE, GOLDEN, WIKITEXT_TEST } from '../helpers/shared.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'crepe-text-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function writeTemp(name: string, content: string | Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

test('hfWikitextText: blank rows become "", others keep "\\n", joined with "\\n\\n"', () => {
  // rows '', ' = A = \n', '', 'Text .\n'
  assert.equal(hfWikitextText(' \n = A = \n \nText .\n'), ['', ' = A = \n', '', 'Text .\n'].join('\n\n'));
  assert.equal(hfWikitextText(' \n = A = \n \nText .\n'), '\n\n = A = \n\n\n\n\nText .\n');
  // No final newline: the last line is still a row.
  assert.equal(hfWikitextText('a\n\t\nb'), 'a\n\n\n\n\nb\n');
});

test('readEvalText on wiki.test.raw matches the golden text sha256', () => {
  const golden = JSON.parse(readFileSync(path.join(GOLDEN, 'stories260K.json'), 'utf8'));
  const text = readEvalText(WIKITEXT_TEST);
  const digest = createHash('sha256').update(text, 'utf8').digest('hex');
  assert.equal(digest, golden.wikitext2_test.text_utf8_sha256);
});

test('isWikitextRawFile recognises wiki.*.raw names only', () => {
  assert.equal(isWikitextRawFile('/x/wiki.test.raw'), true);
  assert.equal(isWikitextRawFile('wiki.train.raw'), true);
  assert.equal(isWikitextRawFile('/x/ptb.test.txt'), false);
  assert.equal(isWikitextRawFile('/x/mywiki.test.raw'), false);
});

test('readEvalText leaves other files unchanged', () => {
  const file = writeTemp('plain.txt', ' \nhello\n');
  assert.equal(readEvalText(file), ' \nhello\n');
});

test('readTextFile: missing file and invalid UTF-8 are UserErrors naming the file', () => {
  const missing = path.join(dir, 'nope.txt');
  assert.throws(() => readTextFile(missing), (err: unknown) => err instanceof UserError && err.message.includes(missing));
  const bad = writeTemp('bad.txt', new Uint8Array([0x61, 0xff, 0x62]));
  assert.throws(() => readTextFile(bad), (err: unknown) => err instanceof UserError && /bad\.txt.*UTF-8/.test(err.message));
  assert.throws(() => readTextFile(dir), UserError);
});

test('readJsonlDocuments: texts in order, blank lines skipped, CRLF tolerated, gzip accepted', () => {
  const content = '{"text":"first","url":"u"}\r\n\n{"text":"sec\\nond"}\n   \n{"text":""}';
  assert.deepEqual(readJsonlDocuments(writeTemp('docs.jsonl', content)), ['first', 'sec\nond', '']);
  assert.deepEqual(readJsonlDocuments(writeTemp('docs.jsonl.gz', gzipSync(content))), ['first', 'sec\nond', '']);
  // A byte-order mark (Windows editors write one) is not part of the first document.
  assert.deepEqual(readJsonlDocuments(writeTemp('bom.jsonl', `\ufeff${content}`)), ['first', 'sec\nond', '']);
});

test('looksLikeJsonLines: a first non-blank line that is an object with a string "text"', () => {
  assert.equal(looksLikeJsonLines('\n  {"text": "a", "url": "u"}\n{"text": "b"}'), true);
  assert.equal(looksLikeJsonLines('\ufeff{"text": "a"}'), true);
  assert.equal(looksLikeJsonLines('{"a": 1}\nplain text'), false);
  assert.equal(looksLikeJsonLines('{"text": 5}'), false);
  assert.equal(looksLikeJsonLines('{ not json'), false);
  assert.equal(looksLikeJsonLines(' = Valkyria Chronicles III = \n'), false);
  assert.equal(looksLikeJsonLines(''), false);
});

test('readJsonlDocuments: bad JSON or missing text names file and line', () => {
  const badJson = writeTemp('bad.jsonl', '{"text":"a"}\n\n{"text":\n');
  assert.throws(() => readJsonlDocuments(badJson), (err: unknown) => err instanceof UserError && err.message.includes('bad.jsonl line 3'));
  const noText = writeTemp('notext.jsonl', '{"text":"a"}\n{"body":"b"}\n');
  assert.throws(() => readJsonlDocuments(noText), (err: unknown) => err instanceof UserError && err.message.includes('notext.jsonl line 2') && err.message.includes('"text"'));
  const numberText = writeTemp('num.jsonl', '[1]\n');
  assert.throws(() => readJsonlDocuments(numberText), /num\.jsonl line 1/);
});

test('readJsonlDocuments reads the shared C4 sample (1000 documents)', () => {
  const docs = readJsonlDocuments(C4_SAMPLE);
  assert.equal(docs.length, 1000);
  assert.ok(docs[0].startsWith('Beginners BBQ Class Taking Place in Missoula!'));
});
