// The session recording format: asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/), so
// `asciinema play` and `asciinema cat` read a Ward recording as it is. A header line, then one JSON
// array per event: [seconds since start, "o" | "r" | "m", data]. Pure functions: the node's recorder
// writes with them, and `wsh play` / the web player read with them. Part of the contract (the Auth API and the web
// API serve recordings in it), and free of Node modules: the web UI's bundle includes this file.
//
// What is recorded: terminal output ("o"), resizes ("r", "COLSxROWS") and markers ("m") naming who
// joined, left or typed. Keystrokes themselves are not: they include what was typed at prompts that
// do not echo (passwords), and what the terminal showed is already in the output.
export interface CastHeader {
  version: 2;
  width: number;
  height: number;
  /** Unix seconds when the session started. */
  timestamp: number;
  title?: string;
  env?: Record<string, string>;
}

export type CastEventType = 'o' | 'r' | 'm';
export type CastEvent = [time: number, type: CastEventType, data: string];

export interface Cast {
  header: CastHeader;
  events: CastEvent[];
}

/** Limits for reading a recording from the network or disk. */
const MAX_LINE = 4 * 1024 * 1024;
const MAX_TERM = 10_000;

export function encodeHeader(h: CastHeader): string {
  return JSON.stringify(h) + '\n';
}

export function encodeEvent(time: number, type: CastEventType, data: string): string {
  // Millisecond resolution as asciinema writes it; a fixed form keeps files diff-able.
  return JSON.stringify([Math.round(time * 1e6) / 1e6, type, data]) + '\n';
}

export class CastParseError extends Error {
  override name = 'CastParseError';
}

function isEvent(v: unknown): v is [number, CastEventType | 'i', string] {
  return (
    Array.isArray(v) &&
    v.length === 3 &&
    typeof v[0] === 'number' &&
    Number.isFinite(v[0]) &&
    v[0] >= 0 &&
    (v[1] === 'o' || v[1] === 'r' || v[1] === 'm' || v[1] === 'i') &&
    typeof v[2] === 'string'
  );
}

/**
 * Reads a recording. A recording cut short (the node died mid-write) ends at its last whole line;
 * anything else malformed is an error naming the line.
 */
export function parseCast(text: string): Cast {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const first = lines[0];
  if (first === undefined) throw new CastParseError('empty recording');
  let header: CastHeader;
  try {
    header = JSON.parse(first) as CastHeader;
  } catch {
    throw new CastParseError('line 1: the header is not JSON');
  }
  if (
    typeof header !== 'object' ||
    header === null ||
    header.version !== 2 ||
    !Number.isInteger(header.width) ||
    !Number.isInteger(header.height) ||
    header.width < 1 ||
    header.height < 1 ||
    header.width > MAX_TERM ||
    header.height > MAX_TERM
  ) {
    throw new CastParseError('line 1: not an asciicast v2 header');
  }
  const events: CastEvent[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.length > MAX_LINE) throw new CastParseError(`line ${i + 1}: too long`);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) break; // a torn last line: the writer was killed mid-write
      throw new CastParseError(`line ${i + 1}: not JSON`);
    }
    if (!isEvent(v)) throw new CastParseError(`line ${i + 1}: not an asciicast event`);
    // Input events ("i") are part of the format but Ward never writes them; skip rather than fail.
    if (v[1] !== 'i') events.push([v[0], v[1], v[2]]);
  }
  return { header, events };
}

/** All output, concatenated: what the terminal received, for `--format text` and for tests. */
export function castOutput(cast: Cast): string {
  return cast.events
    .filter((e) => e[1] === 'o')
    .map((e) => e[2])
    .join('');
}

/** Parses a resize event's data ("120x40"). */
export function parseSize(data: string): { cols: number; rows: number } | undefined {
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(data);
  return m ? { cols: Number(m[1]), rows: Number(m[2]) } : undefined;
}

/**
 * Playback schedule: each event with the delay to wait before it, at `speed`, with long pauses
 * capped at `maxIdle` seconds (asciinema's idle_time_limit) so a coffee break does not stall a replay.
 */
export function* schedule(cast: Cast, speed = 1, maxIdle = 2): Generator<{ delayMs: number; event: CastEvent }> {
  let last = 0;
  for (const event of cast.events) {
    const gap = Math.min(Math.max(event[0] - last, 0), maxIdle);
    last = event[0];
    yield { delayMs: (gap * 1000) / speed, event };
  }
}
