// Durations as people write them in YAML and on the command line: "90s", "30m", "8h", "1h30m", "7d".
import { BadParameter } from '../api/errors.ts';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+)(ms|s|m|h|d)/gy;
/**
 * No duration Ward takes is meant to be longer (the longest, a host certificate's, is at most a year); a longer
 * one is a typo, and past ~136 years it no longer fits the API's 32-bit seconds nor, far later, a Date.
 */
const MAX_MS = 3650 * UNIT_MS.d!;

export function parseDuration(text: string): number {
  const s = text.trim();
  if (s.length === 0 || s.length > 32) throw new BadParameter(`invalid duration "${text}" (use e.g. 30m, 8h, 1h30m)`);
  let total = 0;
  PART.lastIndex = 0;
  let pos = 0;
  for (let m = PART.exec(s); m; m = PART.exec(s)) {
    total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
    pos = PART.lastIndex;
  }
  if (pos !== s.length || total <= 0) throw new BadParameter(`invalid duration "${text}" (use e.g. 30m, 8h, 1h30m)`);
  if (total > MAX_MS) throw new BadParameter(`duration "${text}" is too long (at most 3650d)`);
  return total;
}

export function formatDuration(ms: number): string {
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join('') || '0s';
}
