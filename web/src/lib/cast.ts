// Playing an asciicast v2 recording in the browser (pure: no DOM, no clock). The player asks, for a
// position on the timeline, which events are due; pauses longer than maxIdle are shortened as
// `asciinema play -i` does, so the timeline shows the session as it will play.

export interface CastHeader {
  version: 2;
  width: number;
  height: number;
  timestamp?: number;
}

export type CastEvent = [time: number, type: 'o' | 'r' | 'm', data: string];

export interface Timeline {
  header: CastHeader;
  /** Events with their play times (seconds from the start, idle pauses capped). */
  events: CastEvent[];
  duration: number;
}

const MAX_TERM = 10_000;

export function parseCast(text: string): { header: CastHeader; events: CastEvent[] } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const first = lines[0];
  if (first === undefined) throw new Error('the recording is empty');
  let header: CastHeader;
  try {
    header = JSON.parse(first) as CastHeader;
  } catch {
    throw new Error('the recording has no asciicast header');
  }
  if (header?.version !== 2 || !Number.isInteger(header.width) || !Number.isInteger(header.height) || header.width < 1 || header.height < 1 || header.width > MAX_TERM || header.height > MAX_TERM) {
    throw new Error('not an asciicast v2 recording');
  }
  const events: CastEvent[] = [];
  for (let i = 1; i < lines.length; i++) {
    let v: unknown;
    try {
      v = JSON.parse(lines[i]!);
    } catch {
      if (i === lines.length - 1) break; // a torn last line (the node died mid-write)
      throw new Error(`line ${i + 1} of the recording is not JSON`);
    }
    if (!Array.isArray(v) || v.length !== 3 || typeof v[0] !== 'number' || !Number.isFinite(v[0]) || typeof v[2] !== 'string') continue;
    if (v[1] === 'o' || v[1] === 'r' || v[1] === 'm') events.push([v[0], v[1], v[2]]);
  }
  return { header, events };
}

export function buildTimeline(cast: { header: CastHeader; events: CastEvent[] }, maxIdle = 2): Timeline {
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
export function replay(tl: Timeline, from: number, to: number): { output: string; size?: { cols: number; rows: number } } {
  let output = '';
  let size: { cols: number; rows: number } | undefined;
  for (let i = from; i < to; i++) {
    const [, type, data] = tl.events[i]!;
    if (type === 'o') output += data;
    else if (type === 'r') {
      const m = /^(\d{1,5})x(\d{1,5})$/.exec(data);
      if (m) size = { cols: Number(m[1]), rows: Number(m[2]) };
    }
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
