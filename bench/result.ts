// One benchmark figure next to its reference, and the machine it was measured on. Every bench returns
// these so run.ts can print one table and write bench/results.json.
import os from 'node:os';

export interface BenchResult {
  name: string;
  ward: number;
  /** null when there is no reference (latencies). */
  reference: number | null;
  unit: string;
  /** ward / reference: above 1 means Ward does more of the same work per second than the reference. */
  ratio: number | null;
  /** What the reference is, and anything that qualifies the comparison. */
  note: string;
  machine: string;
  node: string;
  date: string;
}

export function machine(): string {
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return `${os.cpus()[0]?.model ?? 'unknown CPU'} x${os.availableParallelism()} (load avg at start ${load})`;
}

export function result(name: string, ward: number, reference: number | null, unit: string, note: string): BenchResult {
  const hasRef = reference !== null && Number.isFinite(reference) && reference > 0;
  return {
    name,
    ward: round(ward),
    reference: hasRef ? round(reference) : null,
    unit,
    ratio: hasRef ? Math.round((ward / reference) * 100) / 100 : null,
    note,
    machine: machine(),
    node: process.version,
    date: new Date().toISOString(),
  };
}

function round(n: number): number {
  return n >= 100 ? Math.round(n) : Math.round(n * 10) / 10;
}

export function printTable(results: BenchResult[]): void {
  const rows = results.map((r) => [
    r.name,
    `${r.ward}`,
    r.reference === null ? '-' : `${r.reference}`,
    r.unit,
    r.ratio === null ? '-' : `${r.ratio}x`,
  ]);
  const head = ['benchmark', 'ward', 'reference', 'unit', 'ward/ref'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i === 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log(
    `\nFigures are from ONE run on ${machine()}, node ${process.version}. With the load average above the core count ` +
      'they move a lot between runs (ssh-keygen -s ranged 127-452 certs/s on a shared 2-core box): compare ratios ' +
      'from the same run, and CPU ms per cert, rather than absolute rates.',
  );
}

/** p-th percentile (0..100) of sorted values, nearest rank. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
