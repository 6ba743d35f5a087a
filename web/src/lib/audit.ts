// The audit log page's query (pure): form fields → /webapi/events query string, and a one-line
// summary of an event for the table.

export interface AuditFilters {
  /** datetime-local values (the browser's local time) or '' */
  from: string;
  to: string;
  types: string;
  user: string;
}

export function eventsQuery(f: AuditFilters, limit = 500): string {
  const q = new URLSearchParams();
  const iso = (v: string) => {
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? '' : d.toISOString();
  };
  if (f.from && iso(f.from)) q.set('from', iso(f.from));
  if (f.to && iso(f.to)) q.set('to', iso(f.to));
  const types = f.types.split(/[\s,]+/).filter(Boolean);
  if (types.length) q.set('types', types.join(','));
  if (f.user.trim()) q.set('user', f.user.trim());
  q.set('limit', String(limit));
  return q.toString();
}

const SKIP = new Set(['event', 'code', 'time', 'uid', 'cluster', 'user']);

export function summarize(e: Record<string, unknown>): string {
  return Object.entries(e)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined && v !== '')
    .slice(0, 5)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}
