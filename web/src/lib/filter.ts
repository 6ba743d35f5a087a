// Searching and filtering the server list (pure). Search matches the host name, the id and any
// label key or value; label filters ("env=prod") must all match.
import type { WebNode as ServerRow } from '../../../src/api/webapi.ts';

export type { ServerRow };

export function parseLabelFilter(text: string): [string, string] | undefined {
  const eq = text.indexOf('=');
  if (eq <= 0) return undefined;
  return [text.slice(0, eq).trim(), text.slice(eq + 1).trim()];
}

export function filterServers(rows: ServerRow[], search: string, labelFilters: string[]): ServerRow[] {
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  const wanted = labelFilters.map(parseLabelFilter).filter((f): f is [string, string] => !!f);
  return rows
    .filter((r) => wanted.every(([k, v]) => r.labels[k] === v))
    .filter((r) => {
      const hay = [r.hostname, r.id, r.addr, ...Object.entries(r.labels).map(([k, v]) => `${k}=${v}`)]
        .join(' ')
        .toLowerCase();
      return words.every((w) => hay.includes(w));
    })
    .sort((a, b) => a.hostname.localeCompare(b.hostname));
}

/** Every label of every server, once each, for the filter picker. */
export function allLabels(rows: ServerRow[]): string[] {
  return [...new Set(rows.flatMap((r) => Object.entries(r.labels).map(([k, v]) => `${k}=${v}`)))].sort();
}
