import assert from 'node:assert/strict';
import { test } from 'node:test';
import { barChartSvg } from '../../src/util/svg-bars.ts';

test('barChartSvg: bar lengths proportional to the values on a 0..max axis, labels escaped, values written', () => {
  const svg = barChartSvg([{ label: 'a<b', value: 0.25 }, { label: 'dense & pruned', value: 1 }], { title: 'T', xLabel: 'x', max: 1, width: 560 });
  const widths = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(widths.length, 2);
  assert.ok(Math.abs(widths[0] * 4 - widths[1]) < 0.05, `${widths}`);
  assert.ok(svg.includes('>a&lt;b</text>') && svg.includes('>dense &amp; pruned</text>'));
  assert.ok(svg.includes('>0.25</text>') && svg.includes('>1</text>'));
  assert.ok(svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>') && !svg.includes('NaN'));
});
