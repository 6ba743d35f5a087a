import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EVENT_CODES } from './catalog.ts';

const codes = Object.entries(EVENT_CODES).flatMap(([event, c]) => (typeof c === 'string' ? [[event, c]] : [[event, c.success], [event, c.failure]]));

describe('audit event catalogue', () => {
  it('never reuses a code and ends each with a severity', () => {
    const all = codes.map(([, c]) => c);
    assert.equal(new Set(all).size, all.length);
    for (const c of all) assert.match(c!, /^W[A-Z]\d{4}[IWE]$/);
  });
  it('is documented row for row in docs/audit.md', () => {
    const doc = readFileSync(new URL('../../docs/audit.md', import.meta.url), 'utf8');
    for (const [event, code] of codes) assert.ok(doc.includes(`| \`${event}\` | \`${code}\` |`), `${event} ${code} missing from docs/audit.md`);
  });
});
