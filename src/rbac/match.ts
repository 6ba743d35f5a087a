// Pure role matching: labels, trait templates, rules. No I/O, no clock: the node, the proxy and the auth
// server all run exactly these functions, so a decision made at one hop is the one made at the next.
import type { RoleConditions } from '../api/types.ts';

type LabelSelector = NonNullable<RoleConditions['node_labels']>;

/** Limits what an admin-written regex can cost: anchored, bounded length. */
const MAX_REGEX = 256;
const regexCache = new Map<string, RegExp | null>();

function compile(pattern: string): RegExp | null {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    try {
      re = pattern.length <= MAX_REGEX ? new RegExp(pattern) : null;
    } catch {
      re = null; // an invalid regex matches nothing rather than everything
    }
    if (regexCache.size < 10_000) regexCache.set(pattern, re);
  }
  return re;
}

/** '*' matches anything, '^…$' is a regular expression, anything else is an exact value. */
export function matchValue(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('^') && pattern.endsWith('$')) return compile(pattern)?.test(value) ?? false;
  return pattern === value;
}

/**
 * True when every label named by the selector matches. `{'*': '*'}` matches every resource, even one
 * without labels. An empty or absent selector matches nothing (access must be granted explicitly).
 */
export function matchLabels(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  return entries.every(([key, want]) => {
    const patterns = Array.isArray(want) ? want : [want];
    if (key === '*') return patterns.includes('*');
    const have = labels[key];
    return have !== undefined && patterns.some((p) => matchValue(p, have));
  });
}

/** Like matchLabels, but for deny: a deny selector hits when any one listed label matches. */
export function matchAnyLabel(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  return Object.entries(selector).some(([key, want]) => {
    const patterns = Array.isArray(want) ? want : [want];
    if (key === '*') return patterns.includes('*');
    const have = labels[key];
    return have !== undefined && patterns.some((p) => matchValue(p, have));
  });
}

const TEMPLATE = /^\{\{\s*(internal|external)\.([A-Za-z0-9_]+)\s*\}\}$/;

/**
 * Expands '{{internal.logins}}' into the user's trait values. A template naming a trait the user does
 * not have expands to nothing (never to the literal text).
 */
export function expandTemplates(values: readonly string[] | undefined, traits: Record<string, string[]>): string[] {
  const out: string[] = [];
  for (const value of values ?? []) {
    const m = TEMPLATE.exec(value);
    if (m) out.push(...(traits[m[2]!] ?? []));
    else if (!value.includes('{{')) out.push(value);
  }
  return [...new Set(out)];
}
