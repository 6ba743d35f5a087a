import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EVENT_CODES, EVENTS_BY_SYSTEM_ROLE, reportableEvents } from './catalog.ts';

const codes = Object.entries(EVENT_CODES).flatMap(([event, c]) =>
  typeof c === 'string'
    ? [[event, c]]
    : [
        [event, c.success],
        [event, c.failure],
      ],
);

describe('audit event catalogue', () => {
  it('never reuses a code and ends each with a severity', () => {
    const all = codes.map(([, c]) => c);
    assert.equal(new Set(all).size, all.length);
    for (const c of all) assert.match(c!, /^W[A-Z]\d{4}[IWE]$/);
  });
  it('lets hosts report only catalogued events, and none that only the auth server writes', () => {
    const authOnly = Object.keys(EVENT_CODES).filter((e) =>
      /^(user|role|resource|cert|ca|join_token|node|lock|mfa)\./.test(e),
    );
    authOnly.push('session.upload');
    for (const [role, events] of Object.entries(EVENTS_BY_SYSTEM_ROLE)) {
      for (const e of events) assert.ok(e in EVENT_CODES, `${role} may report "${e}", which is not in the catalogue`);
      for (const e of authOnly)
        assert.ok(!events.has(e), `${role} may report "${e}", which only the auth server writes`);
    }
    assert.ok(reportableEvents(['node']).has('session.start'));
    assert.ok(!reportableEvents(['proxy']).has('session.start'));
    assert.equal(reportableEvents(['admin', 'db', 'app', 'kube']).size, 0);
  });
  it('is documented row for row in docs/audit.md', () => {
    const doc = readFileSync(new URL('../../docs/audit.md', import.meta.url), 'utf8');
    for (const [event, code] of codes)
      assert.ok(doc.includes(`| \`${event}\` | \`${code}\` |`), `${event} ${code} missing from docs/audit.md`);
  });
});
