// The SVG scatter plot: well-formed markup, one circle per point at hand-computed positions, escaped text, log-scale labels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scatterSvg } from '../../src/util/svg-scatter.ts';

const options = { title: 'proxy vs PPL', xLabel: 'proxy', yLabel: 'PPL' };

/** Checks that tags nest properly with <svg> as the root, and that no raw '<', '>' or bare '&' sits in text. */
function assertWellFormed(svg: string): void {
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), svg.slice(0, 60));
  assert.ok(svg.endsWith('</svg>\n'));
  const open: string[] = [];
  let rootClosed = false;
  const text = svg.replace(/<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z][\w:-]*="[^"<>]*")*)\s*(\/?)>/g, (_tag, closing: string, name: string, _attrs, selfClosing: string) => {
    assert.ok(!rootClosed, `<${name}> after </svg>`);
    if (closing) {
      assert.equal(open.pop(), name, `</${name}> closes the wrong element`);
      if (open.length === 0) rootClosed = true;
    } else if (!selfClosing) open.push(name);
    else assert.ok(open.length > 0, `<${name}/> outside <svg>`);
    return '';
  });
  assert.deepEqual(open, [], 'unclosed elements');
  assert.ok(!/[<>]/.test(text), `raw markup characters left in text: ${text}`);
  assert.ok(!/&(?!(amp|lt|gt|quot|apos);)/.test(text), `bare '&' in text: ${text}`);
}

const circles = (svg: string) => [...svg.matchAll(/<circle cx="([^"]+)" cy="([^"]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
const textContents = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

test('two points: well-formed, one circle each at the hand-computed positions, ticks 0, 0.5, 1', () => {
  const svg = scatterSvg([{ x: 0, y: 0 }, { x: 1, y: 1 }], options);
  assertWellFormed(svg);
  // Data range padded by 5 % each side: x, y ∈ [−0.05, 1.05]; plot area 470 × 312 from (70, 36).
  // x = 0 → 70 + 0.05/1.1·470 = 91.36; y = 0 → 348 − 0.05/1.1·312 = 333.82; (1, 1) → (518.64, 50.18).
  assert.deepEqual(circles(svg), [[91.36, 333.82], [518.64, 50.18]]);
  assert.match(svg, /width="560" height="400" viewBox="0 0 560 400"/);
  const labels = textContents(svg);
  assert.deepEqual(labels.slice(0, 4), ['proxy vs PPL', '0', '0.5', '1']);
  assert.ok(labels.includes('proxy'));
  assert.ok(labels.includes('PPL'));
});

test('one circle per point; no NaN anywhere', () => {
  const points = Array.from({ length: 37 }, (_, i) => ({ x: Math.sin(i), y: 5 + i * i }));
  const svg = scatterSvg(points, { ...options, logY: true });
  assertWellFormed(svg);
  assert.equal(circles(svg).length, 37);
  assert.equal((svg.match(/<circle /g) ?? []).length, 37);
  assert.ok(!svg.includes('NaN'));
  assert.ok(!svg.includes('Infinity'));
});

test('a single point (zero range) is placed in the middle of the plot', () => {
  const svg = scatterSvg([{ x: 0.3, y: 42 }], { ...options, width: 200, height: 100 });
  assertWellFormed(svg);
  // Range ±1 around the point: its position is the centre of the plot area.
  assert.deepEqual(circles(svg), [[70 + (200 - 90) / 2, 100 - 52 - (100 - 88) / 2]]);
  assert.ok(!svg.includes('NaN'));
});

test("'<', '>' and '&' in the title and labels are escaped", () => {
  const svg = scatterSvg([{ x: 1, y: 2 }, { x: 2, y: 3 }], { title: 'a<b & c>d', xLabel: 'x<1', yLabel: 'p&l' });
  assertWellFormed(svg);
  assert.ok(svg.includes('>a&lt;b &amp; c&gt;d</text>'));
  assert.ok(svg.includes('>x&lt;1</text>'));
  assert.ok(svg.includes('>p&amp;l</text>'));
});

test('log scale: y labels are positive perplexities (10 … 1000 → 10, 31.6, 100, 316, 1000), axis says so', () => {
  const svg = scatterSvg([{ x: 0, y: 10 }, { x: 1, y: 1000 }, { x: 0.5, y: 100 }], { ...options, logY: true });
  assertWellFormed(svg);
  // Y labels are right-aligned at x = 63.
  const yLabels = [...svg.matchAll(/<text x="63" y="[^"]+" text-anchor="end">([^<]*)<\/text>/g)].map((m) => Number(m[1]));
  assert.deepEqual(yLabels, [10, 31.6, 100, 316, 1000]);
  assert.ok(yLabels.every((v) => v > 0));
  assert.ok(svg.includes('PPL (log scale)</text>'));
  // log10: 100 sits halfway between 10 and 1000.
  const [low, high, middle] = circles(svg);
  assert.ok(Math.abs(middle[1] - (low[1] + high[1]) / 2) <= 0.01);
  assert.ok(high[1] < low[1], 'larger PPL is higher on the plot');
});
