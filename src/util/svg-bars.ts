/** A small, dependency-free SVG chart of horizontal bars (reports), in the style of svg-scatter.ts. */
import { escapeXml, svgFrame, ticks } from './svg-scatter.ts';

export interface Bar {
  label: string;
  value: number;
  /** Bar colour (default blue). */
  color?: string;
}

export interface BarChartOptions {
  title: string;
  /** What the values are, under the axis. */
  xLabel: string;
  /** The axis' right end (default: the largest value). */
  max?: number;
  /** How a value is written next to its bar. */
  format?: (value: number) => string;
  width?: number;
}

export function barChartSvg(bars: readonly Bar[], opts: BarChartOptions): string {
  const width = opts.width ?? 560;
  const rowHeight = 16;
  const labelWidth = Math.min(220, 12 + 6.5 * Math.max(4, ...bars.map((b) => b.label.length)));
  const margin = { left: labelWidth, right: 70, top: 32, bottom: 40 };
  const height = margin.top + margin.bottom + rowHeight * Math.max(1, bars.length);
  const format = opts.format ?? ((v: number) => String(Number(v.toPrecision(4))));
  const max = opts.max ?? Math.max(0, ...bars.map((b) => b.value));
  const scale = max > 0 ? (width - margin.left - margin.right) / max : 0;
  const axisY = height - margin.bottom;
  const parts = svgFrame(width, height, opts.title, margin);
  if (max > 0) {
    for (const t of ticks(0, max, 4)) {
      const x = margin.left + t * scale;
      parts.push(`<line x1="${x.toFixed(2)}" y1="${axisY}" x2="${x.toFixed(2)}" y2="${axisY + 4}" stroke="black"/>`);
      parts.push(`<text x="${x.toFixed(2)}" y="${axisY + 15}" text-anchor="middle">${escapeXml(format(t))}</text>`);
    }
  }
  parts.push(`<text x="${(margin.left + width - margin.right) / 2}" y="${height - 8}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  bars.forEach((bar, i) => {
    const y = margin.top + i * rowHeight;
    const length = Math.max(0, bar.value) * scale;
    parts.push(`<text x="${margin.left - 6}" y="${y + rowHeight - 4}" text-anchor="end">${escapeXml(bar.label)}</text>`);
    parts.push(`<rect x="${margin.left}" y="${y + 2}" width="${length.toFixed(2)}" height="${rowHeight - 4}" fill="${bar.color ?? '#1f77b4'}"/>`);
    parts.push(`<text x="${(margin.left + length + 4).toFixed(2)}" y="${y + rowHeight - 4}">${escapeXml(format(bar.value))}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
