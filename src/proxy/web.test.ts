// The pure parts of the proxy's web front: the web session's secrets, cookies and CSRF token, the
// terminal's query and control frames, the role editor's errors, and the static files' headers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { webSessionState, shouldRecordActivity } from '../auth/websessions.ts';
import { parseControl, parseTerminalQuery } from './webterminal.ts';
import { roleFromYAML } from './webroutes.ts';
import { CONTENT_SECURITY_POLICY, WebAssets } from './webstatic.ts';
import { bearerFromCookie, checkCSRF, csrfToken, newBearer, sealKeys, sessionCookie, sessionIdHash, unsealKeys } from './websession.ts';

describe('web session secrets', () => {
  const bearer = newBearer();
  const keys = { sshKey: 'ssh private', tlsKey: 'tls private' };

  it('seals the keys so that only the bearer secret opens them', () => {
    const sealed = sealKeys(bearer, keys);
    assert.ok(!sealed.toString('latin1').includes('private'), 'no key in the clear');
    assert.deepEqual(unsealKeys(bearer, sealed), keys);
    assert.throws(() => unsealKeys(newBearer(), sealed), /sign in again/);
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    assert.throws(() => unsealKeys(bearer, tampered), /sign in again/);
  });

  it('names the session by a hash of the secret, and binds the CSRF token to it', () => {
    assert.match(sessionIdHash(bearer), /^[0-9a-f]{64}$/);
    assert.notEqual(sessionIdHash(bearer), bearer);
    assert.doesNotThrow(() => checkCSRF(bearer, csrfToken(bearer)));
    assert.throws(() => checkCSRF(bearer, undefined), /CSRF/);
    assert.throws(() => checkCSRF(bearer, csrfToken(newBearer())), /CSRF/);
    assert.throws(() => checkCSRF(bearer, csrfToken(bearer).slice(1)), /CSRF/);
  });

  it('sets a host-only, HttpOnly, Secure, SameSite=Strict cookie and reads only a well-formed one back', () => {
    assert.equal(sessionCookie(bearer, 3600.7), `__Host-ward_session=${bearer}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600`);
    assert.equal(bearerFromCookie(`a=b; __Host-ward_session=${bearer}; c=d`), bearer);
    assert.equal(bearerFromCookie('__Host-ward_session=short'), undefined);
    assert.equal(bearerFromCookie(`ward_session=${bearer}`), undefined);
    assert.equal(bearerFromCookie(undefined), undefined);
  });

  it('ends a session at its certificates\' expiry or after the idle timeout', () => {
    const s = { last_active: '2026-01-01T10:00:00Z', idle_timeout_ms: 30 * 60_000, expires: '2026-01-01T20:00:00Z' };
    assert.equal(webSessionState(s, new Date('2026-01-01T10:29:59Z')), 'active');
    assert.equal(webSessionState(s, new Date('2026-01-01T10:30:01Z')), 'idle');
    assert.equal(webSessionState({ ...s, last_active: '2026-01-01T19:59:00Z' }, new Date('2026-01-01T20:00:00Z')), 'expired');
    assert.equal(shouldRecordActivity(s, new Date('2026-01-01T10:00:30Z')), false, 'at most one write a minute');
    assert.equal(shouldRecordActivity(s, new Date('2026-01-01T10:01:00Z')), true);
  });
});

describe('web terminal requests', () => {
  const q = (s: string) => parseTerminalQuery(new URLSearchParams(s));
  it('reads node, login, size and an optional join, with bounds', () => {
    assert.deepEqual(q('node=n1&login=root&cols=120&rows=40'), { node: 'n1', login: 'root', cols: 120, rows: 40 });
    assert.deepEqual(q('node=n1&login=root&join=3fd45ef6-e7a6-4e4d-b5a7-bd1a00aa0f79&mode=peer'), {
      node: 'n1', login: 'root', cols: 80, rows: 24, join: { sid: '3fd45ef6-e7a6-4e4d-b5a7-bd1a00aa0f79', mode: 'peer' },
    });
    assert.equal((q('node=n1&login=root&join=x&mode=bogus') as string), 'invalid session id');
    assert.equal(q('login=root'), 'missing or invalid node');
    assert.equal(q('node=n1&login=ro ot'), 'missing or invalid login');
    assert.equal(q('node=n1&login=root&cols=100000'), 'invalid terminal size');
  });
  it('accepts resize control frames only', () => {
    assert.deepEqual(parseControl('{"type":"resize","cols":100,"rows":30}'), { cols: 100, rows: 30 });
    assert.equal(parseControl('{"type":"resize","cols":0,"rows":30}'), undefined);
    assert.equal(parseControl('{"type":"exec","cmd":"rm"}'), undefined);
    assert.equal(parseControl('not json'), undefined);
  });
});

describe('role editor', () => {
  it('names the YAML line or the schema path that is wrong', () => {
    assert.throws(() => roleFromYAML('kind: role\nmetadata: [\n'), /YAML line \d/);
    assert.throws(() => roleFromYAML('kind: role\nversion: v1\nmetadata: {name: r}\nspec: {allow: {rulez: []}}\n'), /spec\.allow\.rulez: unknown key/);
    assert.throws(() => roleFromYAML('kind: user\nversion: v1\nmetadata: {name: u}\nspec: {roles: []}\n'), /expected kind: role/);
    const role = roleFromYAML('kind: role\nversion: v1\nmetadata: {name: r, revision: "7"}\nspec: {allow: {logins: [root]}}\n');
    assert.equal(role.metadata.revision, undefined, 'the server keeps the revision');
  });
});

describe('web UI files', () => {
  it('allows scripts and connections from this origin only, and no framing', () => {
    assert.match(CONTENT_SECURITY_POLICY, /default-src 'self'/);
    assert.match(CONTENT_SECURITY_POLICY, /script-src 'self';/);
    assert.match(CONTENT_SECURITY_POLICY, /connect-src 'self'/);
    assert.match(CONTENT_SECURITY_POLICY, /frame-ancestors 'none'/);
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /script-src[^;]*unsafe/);
  });
  it('says the UI is not built when there is no build, rather than serving something else', () => {
    const none = new WebAssets(undefined);
    assert.equal(none.built, false);
    assert.equal(none.lookup('/web/servers'), undefined);
  });
});
