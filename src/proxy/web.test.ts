// The pure parts of the proxy's web front: the web session's secrets, cookies and CSRF token, the
// terminal's query and control frames, the role editor's errors, and the static files' headers; and the
// web API's one mapping of errors to answers, over a local HTTP server.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { AuthClient } from '../api/client.ts';
import { LimitExceeded, StorageUnavailable } from '../api/errors.ts';
import { webSessionState, shouldRecordActivity } from '../auth/websessions.ts';
import { parseControl, parseTerminalQuery } from './webterminal.ts';
import { roleFromYAML } from './webroutes.ts';
import { CONTENT_SECURITY_POLICY, WebAssets } from './webstatic.ts';
import { webHandler } from './web.ts';
import {
  bearerFromCookie,
  checkCSRF,
  csrfToken,
  newBearer,
  sealKeys,
  sessionCookie,
  sessionIdHash,
  unsealKeys,
  type WebSessions,
} from './websession.ts';

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
    assert.equal(
      sessionCookie(bearer, 3600.7),
      `__Host-ward_session=${bearer}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600`,
    );
    assert.equal(bearerFromCookie(`a=b; __Host-ward_session=${bearer}; c=d`), bearer);
    assert.equal(bearerFromCookie('__Host-ward_session=short'), undefined);
    assert.equal(bearerFromCookie(`ward_session=${bearer}`), undefined);
    assert.equal(bearerFromCookie(undefined), undefined);
  });

  it("ends a session at its certificates' expiry or after the idle timeout", () => {
    const s = { last_active: '2026-01-01T10:00:00Z', idle_timeout_ms: 30 * 60_000, expires: '2026-01-01T20:00:00Z' };
    assert.equal(webSessionState(s, new Date('2026-01-01T10:29:59Z')), 'active');
    assert.equal(webSessionState(s, new Date('2026-01-01T10:30:01Z')), 'idle');
    assert.equal(
      webSessionState({ ...s, last_active: '2026-01-01T19:59:00Z' }, new Date('2026-01-01T20:00:00Z')),
      'expired',
    );
    assert.equal(shouldRecordActivity(s, new Date('2026-01-01T10:00:30Z')), false, 'at most one write a minute');
    assert.equal(shouldRecordActivity(s, new Date('2026-01-01T10:01:00Z')), true);
  });
});

describe('web terminal requests', () => {
  const q = (s: string) => parseTerminalQuery(new URLSearchParams(s));
  it('reads node, login, size and an optional join, with bounds', () => {
    assert.deepEqual(q('node=n1&login=root&cols=120&rows=40'), { node: 'n1', login: 'root', cols: 120, rows: 40 });
    assert.deepEqual(q('node=n1&login=root&join=3fd45ef6-e7a6-4e4d-b5a7-bd1a00aa0f79&mode=peer'), {
      node: 'n1',
      login: 'root',
      cols: 80,
      rows: 24,
      join: { sid: '3fd45ef6-e7a6-4e4d-b5a7-bd1a00aa0f79', mode: 'peer' },
    });
    assert.equal(q('node=n1&login=root&join=x&mode=bogus') as string, 'invalid session id');
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
    assert.throws(
      () => roleFromYAML('kind: role\nversion: v1\nmetadata: {name: r}\nspec: {allow: {rulez: []}}\n'),
      /spec\.allow\.rulez: unknown key/,
    );
    assert.throws(
      () => roleFromYAML('kind: user\nversion: v1\nmetadata: {name: u}\nspec: {roles: []}\n'),
      /expected kind: role/,
    );
    const role = roleFromYAML(
      'kind: role\nversion: v1\nmetadata: {name: r, revision: "7"}\nspec: {allow: {logins: [root]}}\n',
    );
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

describe('web API errors', () => {
  // The auth server's answer to /webapi/ping, swapped per test: the one place that turns errors into answers
  // is the handler's, whatever the route.
  let pingFails: () => Error = () => new Error('unset');
  let server: Server;
  let base: string;
  before(async () => {
    const auth = { ping: async () => Promise.reject(pingFails()) } as unknown as AuthClient;
    const log = pino({ level: 'silent' });
    const handler = webHandler({ auth, sessions: {} as WebSessions, assets: new WebAssets(undefined), log });
    server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const ping = async () => {
    const res = await fetch(`${base}/webapi/ping`);
    return { status: res.status, body: (await res.json()) as unknown, retryAfter: res.headers.get('retry-after') };
  };

  it('answers a failure that is not a Ward error 500 ERR_INTERNAL, without its details', async () => {
    pingFails = () => new TypeError('cannot read properties of undefined (at /work/src/secret.ts:12)');
    const r = await ping();
    assert.equal(r.status, 500);
    assert.deepEqual(r.body, { error: { code: 'ERR_INTERNAL', message: 'internal error in the proxy (see its log)' } });
  });

  it("answers a typed error with its code's status, and a limit with no known wait without Retry-After", async () => {
    pingFails = () => new StorageUnavailable('PostgreSQL db:5432/ward: connect ECONNREFUSED');
    const down = await ping();
    assert.equal(down.status, 503);
    const message = 'PostgreSQL db:5432/ward: connect ECONNREFUSED';
    assert.deepEqual(down.body, { error: { code: 'ERR_STORAGE_UNAVAILABLE', message } });
    pingFails = () => new LimitExceeded('too many devices');
    const limited = await ping();
    assert.equal(limited.status, 429);
    assert.equal(limited.retryAfter, null);
  });
});
