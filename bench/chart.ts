// bench/ratios.svg: one bar per figure that has a reference, on a log scale around 1 (parity), so 2x better
// and 2x worse are bars of the same length. Hand-written SVG: no charting dependency for one picture.
import type { BenchResult } from './result.ts';

const ROW = 22;
const LABEL_W = 380;
const BAR_W = 420;
const PAD = 12;
/** The axis spans 1/16x .. 16x; a ratio outside is drawn at the edge with its value. */
const MAX_LOG2 = 4;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function ratiosSVG(results: BenchResult[], title: string): string {
  const rows = results.filter((r) => r.ratio !== null && r.ratio > 0);
  const top = 48;
  const height = top + rows.length * ROW + 40;
  const width = LABEL_W + BAR_W + 2 * PAD + 60;
  const x0 = PAD + LABEL_W;
  const xOf = (ratio: number) =>
    x0 + ((Math.max(-MAX_LOG2, Math.min(MAX_LOG2, Math.log2(ratio))) + MAX_LOG2) / (2 * MAX_LOG2)) * BAR_W;
  const one = xOf(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ` +
      `${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${PAD}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${PAD}" y="36" fill="#555">ward / reference, log scale; right of the line = Ward better (for ` +
      `latencies and CPU: reference / ward)</text>`,
  ];
  // Grid lines at powers of two.
  for (let e = -MAX_LOG2; e <= MAX_LOG2; e++) {
    const x = xOf(2 ** e);
    out.push(
      `<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${top + rows.length * ROW}" ` +
        `stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`,
    );
    out.push(
      `<text x="${x}" y="${top + rows.length * ROW + 16}" text-anchor="middle" ` +
        `fill="#555">${e < 0 ? `1/${2 ** -e}` : 2 ** e}x</text>`,
    );
  }
  rows.forEach((r, i) => {
    const y = top + i * ROW;
    const x = xOf(r.ratio!);
    const better = r.ratio! >= 1;
    out.push(`<text x="${x0 - 8}" y="${y + 15}" text-anchor="end">${esc(r.name)}</text>`);
    out.push(
      `<rect x="${Math.min(x, one)}" y="${y + 4}" width="${Math.max(1, Math.abs(x - one))}" height="${ROW - 8}" ` +
        `fill="${better ? '#3a8f4b' : '#d9822b'}"/>`,
    );
    out.push(
      `<text x="${better ? x + 4 : x - 4}" y="${y + 15}" text-anchor="${better ? 'start' : 'end'}" ` +
        `fill="#222">${r.ratio}x</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
