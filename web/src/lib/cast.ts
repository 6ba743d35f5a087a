// Playing an asciicast v2 recording in the browser (pure: no DOM, no clock). The player asks, for a
// position on the timeline, which events are due; pauses longer than maxIdle are shortened as
// `asciinema play -i` does, so the timeline shows the session as it will play. The format itself (reading,
// checking, resize events) is the one codec in src/api/asciicast.ts that the node writes and wsh reads with.
import { parseSize, type Cast, type CastEvent, type CastHeader } from '../../../src/api/asciicast.ts';

export interface Timeline {
  header: CastHeader;
  /** Events with their play times (seconds from the start, idle pauses capped). */
  events: CastEvent[];
  duration: number;
}

export function buildTimeline(cast: Cast, maxIdle = 2): Timeline {
  let last = 0;
  let at = 0;
  const events = cast.events.map(([time, type, data]): CastEvent => {
    at += Math.min(Math.max(time - last, 0), maxIdle);
    last = Math.max(last, time);
    return [at, type, data];
  });
  return { header: cast.header, events, duration: events.at(-1)?.[0] ?? 0 };
}

/** Index of the first event after `t`: events [0, index) have been played at position t. */
export function indexAt(tl: Timeline, t: number): number {
  let lo = 0;
  let hi = tl.events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tl.events[mid]![0] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** What a terminal must show after playing events [from, to): output to write, and the last size. */
export function replay(
  tl: Timeline,
  from: number,
  to: number,
): { output: string; size?: { cols: number; rows: number } } {
  let output = '';
  let size: { cols: number; rows: number } | undefined;
  for (let i = from; i < to; i++) {
    const [, type, data] = tl.events[i]!;
    if (type === 'o') output += data;
    else if (type === 'r') size = parseSize(data) ?? size;
  }
  return { output, size };
}

/** m:ss or h:mm:ss for the player's clock. */
export function formatClock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
