// A fast path for the one listing that runs to tens of thousands: nodes. `wsh ls` is a fresh process each time,
// and zod's checks run cold there: 10,000 nodes took ~40 ms of a ~280 ms `wsh ls` (11-15 ms once warm). This
// accepts only nodes in the exact form the auth server writes them (every field within nodeSchema's limits,
// `expires` as toISOString() writes it) and hands anything else to nodeSchema, so it never accepts what the
// schema refuses (listednode.test.ts compares the two). It loads no zod: that alone was ~15 ms of `wsh ls`.
import { isCalendarDate } from '../time/clock.ts';
import { NAME } from './names.ts';
import type { Node } from './types.ts';

const TOP_KEYS = new Set(['kind', 'version', 'metadata', 'spec']);
const META_KEYS = new Set(['name', 'description', 'labels', 'expires', 'revision']);
const SPEC_KEYS = new Set(['hostname', 'addr', 'tunnel', 'version']);
const ISO_UTC_MS = /^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;
const onlyKeys = (o: Record<string, unknown>, allowed: Set<string>): boolean => {
  for (const k in o) if (!allowed.has(k)) return false;
  return Object.getPrototypeOf(o) === Object.prototype;
};

function isLabels(v: unknown): boolean {
  if (!isObject(v) || Object.getPrototypeOf(v) !== Object.prototype) return false;
  for (const k of Object.keys(v)) if (k.length > 256 || k === '__proto__' || !isString(v[k], 1024)) return false;
  return true;
}

/** The node, if `data` is one in the auth server's own form; undefined means "ask nodeSchema". */
export function fastListedNode(data: unknown): Node | undefined {
  if (!isObject(data) || data.kind !== 'node' || data.version !== 'v1' || !onlyKeys(data, TOP_KEYS)) return undefined;
  const { metadata: m, spec: s } = data;
  if (!isObject(m) || !onlyKeys(m, META_KEYS) || typeof m.name !== 'string' || !NAME.test(m.name)) return undefined;
  if (m.description !== undefined && !isString(m.description, 1024)) return undefined;
  if (m.labels !== undefined && !isLabels(m.labels)) return undefined;
  if (m.revision !== undefined && typeof m.revision !== 'string') return undefined;
  if (m.expires !== undefined && !(typeof m.expires === 'string' && isCanonicalDate(m.expires))) return undefined;
  if (
    !isObject(s) ||
    !onlyKeys(s, SPEC_KEYS) ||
    !isString(s.hostname, 256) ||
    !isString(s.addr, 256) ||
    !isString(s.version, 64)
  )
    return undefined;
  if (s.tunnel === undefined) s.tunnel = false;
  else if (typeof s.tunnel !== 'boolean') return undefined;
  return data as unknown as Node;
}

/**
 * A real instant written the way Date#toISOString writes it (so no 30 February, no hour 24), checked by its
 * digits: parsing and re-printing it through Date was ~9 ms of 10,000 nodes.
 */
function isCanonicalDate(s: string): boolean {
  if (!ISO_UTC_MS.test(s)) return false;
  const digits = (from: number, to: number) => {
    let n = 0;
    for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 48;
    return n;
  };
  return isCalendarDate(digits(0, 4), digits(5, 7), digits(8, 10));
}
