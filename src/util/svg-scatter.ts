/** A small, dependency-free SVG scatter plot (for proxy validation and reports). */

export interface ScatterOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Plot y on a log scale (perplexities). */
  logY?: boolean;
  width?: number;
  height?: number;
}

export const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Rounded tick positions covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (lo === hi) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export interface Margin {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** The opening of a chart: the svg element, a white background, the title and the two axes inside `margin`. */
export function svgFrame(width: number, height: number, title: string, margin: Margin): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="13">${escapeXml(title)}</text>`,
    `<line x1="${margin.left}" y1="${height - margin.bottom}" x2="${width - margin.right}" y2="${height - margin.bottom}" stroke="black"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${height - margin.bottom}" stroke="black"/>`,
  ];
}

export function scatterSvg(points: Array<{ x: number; y: number }>, opts: ScatterOptions): string {
  const width = opts.width ?? 560;
  const height = opts.height ?? 400;
  const margin = { left: 70, right: 20, top: 36, bottom: 52 };
  const ty = (y: number) => (opts.logY ? Math.log10(y) : y);
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => ty(p.y));
  const pad = (lo: number, hi: number) => (hi > lo ? [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)] : [lo - 1, hi + 1]);
  const [x0, x1] = pad(Math.min(...xs), Math.max(...xs));
  const [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
  const px = (x: number) => margin.left + ((x - x0) / (x1 - x0)) * (width - margin.left - margin.right);
  const py = (y: number) => height - margin.bottom - ((y - y0) / (y1 - y0)) * (height - margin.top - margin.bottom);

  const parts = svgFrame(width, height, opts.title, margin);
  for (const t of ticks(x0, x1)) {
    parts.push(`<line x1="${px(t)}" y1="${height - margin.bottom}" x2="${px(t)}" y2="${height - margin.bottom + 4}" stroke="black"/>`);
    parts.push(`<text x="${px(t)}" y="${height - margin.bottom + 16}" text-anchor="middle">${t}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    const label = opts.logY ? Number((10 ** t).toPrecision(3)) : t;
    parts.push(`<line x1="${margin.left - 4}" y1="${py(t)}" x2="${margin.left}" y2="${py(t)}" stroke="black"/>`);
    parts.push(`<text x="${margin.left - 7}" y="${py(t) + 4}" text-anchor="end">${label}</text>`);
  }
  parts.push(`<text x="${(margin.left + width - margin.right) / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(margin.top + height - margin.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(opts.yLabel)}${opts.logY ? ' (log scale)' : ''}</text>`);
  for (let i = 0; i < points.length; i++) {
    parts.push(`<circle cx="${px(xs[i]).toFixed(2)}" cy="${py(ys[i]).toFixed(2)}" r="3.5" fill="#1f77b4" fill-opacity="0.75"/>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
