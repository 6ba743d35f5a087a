// Input rules every backend applies at its seam, so SQLite and PostgreSQL refuse exactly the same
// things (PostgreSQL cannot store NUL in text; SQLite could, and a value that only works on one
// backend would break a migration between them).

import { BadParameter } from '../api/errors.ts';
import type { AuditEvent, EventQuery, ItemInput } from './backend.ts';

export const DEFAULT_RANGE_LIMIT = 10_000;
const DEFAULT_EVENT_LIMIT = 1_000;
const MAX_EVENT_LIMIT = 10_000;

export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new BadParameter('backend key must be a non-empty string');
  if (key.includes('\0')) throw new BadParameter('backend key must not contain NUL');
}

/** Returns the expiry in epoch milliseconds, or null for "never". */
export function checkItem(item: ItemInput): number | null {
  checkKey(item.key);
  if (typeof item.value !== 'string') throw new BadParameter(`value of ${item.key} must be a string`);
  if (item.value.includes('\0')) throw new BadParameter(`value of ${item.key} must not contain NUL`);
  return checkExpires(item.key, item.expires);
}

export function checkExpires(key: string, expires: Date | undefined): number | null {
  if (expires === undefined) return null;
  const ms = expires instanceof Date ? expires.getTime() : NaN;
  if (!Number.isFinite(ms)) throw new BadParameter(`expiry of ${key} is not a valid date`);
  return ms;
}

export function rangeLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_RANGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new BadParameter('range limit must be a positive integer');
  return limit;
}

export interface AuditRow {
  time: number;
  event: string;
  user: string | null;
  sid: string | null;
  json: string;
}

export function auditRow(ev: AuditEvent): AuditRow {
  if (typeof ev.event !== 'string' || ev.event.length === 0) throw new BadParameter('audit event needs a name');
  const time = typeof ev.time === 'string' ? Date.parse(ev.time) : NaN;
  if (!Number.isFinite(time)) throw new BadParameter(`audit event ${ev.event} has no valid time`);
  const json = JSON.stringify(ev);
  return {
    time,
    event: ev.event,
    user: typeof ev.user === 'string' ? ev.user : null,
    sid: typeof ev.sid === 'string' ? ev.sid : null,
    json,
  };
}

export interface AuditFilter {
  from: number | null;
  to: number | null;
  types: string[] | null;
  user: string | null;
  sid: string | null;
  limit: number;
  desc: boolean;
}

/** `from` is inclusive and `to` exclusive, so consecutive windows never return an event twice. */
export function auditFilter(q: EventQuery): AuditFilter {
  const ms = (d: Date | undefined, name: string): number | null => {
    if (d === undefined) return null;
    const t = d instanceof Date ? d.getTime() : NaN;
    if (!Number.isFinite(t)) throw new BadParameter(`event query: ${name} is not a valid date`);
    return t;
  };
  const limit = q.limit ?? DEFAULT_EVENT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new BadParameter('event query: limit must be a positive integer');
  if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc') {
    throw new BadParameter("event query: order must be 'asc' or 'desc'");
  }
  return {
    from: ms(q.from, 'from'),
    to: ms(q.to, 'to'),
    types: q.types && q.types.length > 0 ? [...q.types] : null,
    user: q.user ?? null,
    sid: q.sid ?? null,
    limit: Math.min(limit, MAX_EVENT_LIMIT),
    desc: q.order === 'desc',
  };
}
