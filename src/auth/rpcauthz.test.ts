// The authorization table against the service descriptor (one entry per RPC, no more) and against a matrix of
// callers: who is let through to each sensitive RPC, and who is refused with which message. Callers are built as
// identifyCaller builds them (authz.ts): a locked user or host, or a certificate from another cluster, arrives as
// an anonymous caller carrying the reason, and the table must refuse it with that reason whatever the request.
import assert from 'node:assert/strict';
import { create, type DescMessage } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AuthService } from '../api/gen/ward/auth/v1/auth_pb.ts';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { parseAs, type Resource } from '../api/types.ts';
import type { Identity } from '../crypto/x509.ts';
import { AccessChecker } from '../rbac/checker.ts';
import type { Caller, SystemRole } from './authz.ts';
import { authorize, RPC_AUTHZ, type RPC, type RequestOf } from './rpcauthz.ts';

const HOUR_FROM_NOW = new Date(Date.now() + 3_600_000).toISOString();

function identity(username: string, kind: 'user' | 'host', extra: Partial<Identity> = {}): Identity {
  return { username, roles: [], logins: [], cluster: 'unit', expires: HOUR_FROM_NOW, kind, ...extra };
}

function userCaller(name: string, allow: Record<string, unknown>): Caller {
  const role = parseAs('role', { kind: 'role', version: 'v1', metadata: { name: `${name}-role` }, spec: { allow } });
  const id = identity(name, 'user', { roles: [role.metadata.name] });
  return { kind: 'user', name, checker: new AccessChecker([role], {}), identity: id };
}

function serviceCaller(name: string, systemRoles: SystemRole[]): Caller {
  return { kind: 'service', name, systemRoles, identity: identity(name, 'host', { hostId: name, systemRoles }) };
}

const CALLERS = {
  anonymous: { kind: 'anonymous', reason: 'this call needs a client certificate: log in first' },
  lockedUser: { kind: 'anonymous', reason: 'user "mallory" is locked' },
  lockedHost: { kind: 'anonymous', reason: 'host "n1" is locked: stolen' },
  otherCluster: { kind: 'anonymous', reason: 'your certificate is for another cluster' },
  alice: userCaller('alice', {
    logins: ['alice'],
    node_labels: { env: ['dev'] },
    rules: [{ resources: ['node'], verbs: ['read', 'list'] }],
  }),
  editor: userCaller('ed', { rules: [{ resources: ['user'], verbs: ['create', 'update', 'read', 'list'] }] }),
  superuser: userCaller('root', { rules: [{ resources: ['*'], verbs: ['*'] }], node_labels: { '*': ['*'] } }),
  node: serviceCaller('n1', ['node']),
  proxy: serviceCaller('p1', ['proxy']),
  db: serviceCaller('d1', ['db']),
  admin: serviceCaller('admin', ['admin']),
} satisfies Record<string, Caller>;
type Who = keyof typeof CALLERS;
const EVERYONE = Object.keys(CALLERS) as Who[];
const SIGNED_IN: Who[] = ['alice', 'editor', 'superuser', 'node', 'proxy', 'db', 'admin'];
const USERS: Who[] = ['alice', 'editor', 'superuser'];

/** A request with these fields set and every other one empty, as the wire delivers it. */
function request<M extends RPC>(method: M, fields: Record<string, unknown> = {}): RequestOf<M> {
  return create(AuthService.method[method].input as DescMessage, fields) as RequestOf<M>;
}

function resourceJSON(kind: string, name: string, spec: unknown = {}) {
  return { json: JSON.stringify({ kind, version: 'v1', metadata: { name }, spec }) };
}

/** Who the entry lets through, and what it answers each caller it refuses. */
function outcomes(method: RPC, req: object): Record<Who, string> {
  const out = {} as Record<Who, string>;
  for (const who of EVERYONE) {
    try {
      authorize(method, CALLERS[who], req as never);
      out[who] = 'allowed';
    } catch (err) {
      assert.ok(err instanceof AccessDenied || err instanceof BadParameter, `${method}, ${who}: ${String(err)}`);
      out[who] = err instanceof AccessDenied ? `denied: ${err.message}` : `bad: ${err.message}`;
    }
  }
  return out;
}

function assertAllowed(method: RPC, req: object, allowed: Who[]): Record<Who, string> {
  const got = outcomes(method, req);
  const expected = Object.fromEntries(EVERYONE.map((who) => [who, allowed.includes(who) ? 'allowed' : got[who]]));
  assert.deepEqual(got, expected, `${method}: who is allowed`);
  for (const who of EVERYONE) {
    if (!allowed.includes(who)) assert.match(got[who], /^denied: /, `${method} refuses ${who}`);
  }
  // A caller without a valid certificate is refused with the reason identifyCaller gave, nothing else.
  for (const who of ['anonymous', 'lockedUser', 'lockedHost', 'otherCluster'] as const) {
    if (!allowed.includes(who)) assert.equal(got[who], `denied: ${CALLERS[who].reason}`);
  }
  return got;
}

describe('the Auth API authorization table', () => {
  it('has exactly one entry for every RPC of the service descriptor, and none for an RPC that does not exist', () => {
    const methods = AuthService.methods.map((m) => m.localName).sort();
    assert.deepEqual(Object.keys(RPC_AUTHZ).sort(), methods);
    // A repeated key in the object literal would silently replace the first entry at run time: count the source.
    const source = readFileSync(new URL('./rpcauthz.ts', import.meta.url), 'utf8');
    const table = source.slice(source.indexOf('export const RPC_AUTHZ'), source.indexOf('} satisfies'));
    for (const m of methods) {
      const entries = table.match(new RegExp(`^  ${m}: `, 'gm')) ?? [];
      assert.equal(entries.length, 1, `${m} has ${entries.length} entries in the table`);
    }
  });

  it('refuses a caller without a valid certificate (none, locked, another cluster) before reading the request', () => {
    const anonymousOK = Object.entries(RPC_AUTHZ)
      .filter(([, e]) => 'anonymous' in e)
      .map(([m]) => m)
      .sort();
    assert.deepEqual(anonymousOK, ['ping', 'registerUsingToken']);
    for (const m of AuthService.methods.map((d) => d.localName as RPC)) {
      if (anonymousOK.includes(m)) continue;
      for (const who of ['anonymous', 'lockedUser', 'lockedHost', 'otherCluster'] as const) {
        // A request the entry would choke on: it must not be looked at.
        const refused = (e: unknown) => e instanceof AccessDenied && e.message === CALLERS[who].reason;
        assert.throws(() => authorize(m, CALLERS[who], null as never), refused, `${m} ${who}`);
      }
    }
  });

  it('tells the backend only to a signed-in caller of Ping', () => {
    assert.equal(authorize('ping', CALLERS.anonymous, request('ping')).on.signedIn, false);
    assert.equal(authorize('ping', CALLERS.alice, request('ping')).on.signedIn, true);
  });

  it('holds resource RPCs to the role rule on the kind named in the request', () => {
    const services: Who[] = ['node', 'proxy', 'db', 'admin'];
    assertAllowed('getResource', request('getResource', { kind: 'role', name: 'x' }), ['superuser', ...services]);
    assertAllowed('getResource', request('getResource', { kind: 'token', name: 'x' }), ['superuser', 'admin']);
    const getUser = request('getResource', { kind: 'user', name: 'x' });
    assertAllowed('getResource', getUser, ['editor', 'superuser', ...services]);
    assertAllowed('listResources', request('listResources', { kind: 'token' }), ['superuser', 'admin']);
    const role = resourceJSON('role', 'dev');
    assertAllowed('upsertResource', request('upsertResource', { resource: role }), ['superuser', 'admin']);
    const user = resourceJSON('user', 'bob', { roles: ['access'] });
    assertAllowed('upsertResource', request('upsertResource', { resource: user }), ['editor', 'superuser', 'admin']);
    const overwrite = request('upsertResource', { resource: user, overwrite: true });
    assertAllowed('upsertResource', overwrite, ['editor', 'superuser', 'admin']);
    assertAllowed('deleteResource', request('deleteResource', { kind: 'role', name: 'dev' }), ['superuser', 'admin']);
    assertAllowed('watch', request('watch', { kinds: ['role', 'node'] }), ['superuser', ...services]);
    assertAllowed('watch', request('watch', { kinds: ['token'] }), ['superuser', 'admin']);
    assertAllowed('watch', request('watch'), ['superuser', 'admin']); // every kind, tokens too
  });

  it("says why a user is refused, in the role checker's words", () => {
    const got = outcomes('deleteResource', request('deleteResource', { kind: 'role', name: 'dev' }));
    assert.equal(got.alice, 'denied: access denied: no role allows delete on role');
    assert.equal(got.node, 'denied: access denied');
  });

  it('refuses a request it cannot read, or a CA upload or deletion, as a bad parameter to anyone signed in', () => {
    const ca = resourceJSON('cert_authority', 'x', { type: 'user', cluster: 'unit', active_keys: [{ public: 'k' }] });
    const caUpload = outcomes('upsertResource', request('upsertResource', { resource: ca }));
    const uploadRefusal = 'bad: certificate authorities are created by the auth server, not uploaded';
    for (const who of SIGNED_IN) assert.equal(caUpload[who], uploadRefusal);
    const caDelete = outcomes('deleteResource', request('deleteResource', { kind: 'cert_authority', name: 'x' }));
    for (const who of SIGNED_IN) assert.equal(caDelete[who], 'bad: certificate authorities cannot be deleted');
    const junk = outcomes('upsertResource', request('upsertResource', { resource: { json: '{' } }));
    for (const who of SIGNED_IN) assert.equal(junk[who], 'bad: resource is not valid JSON');
  });

  it('lets a user list the live sessions they are in, and only the session_tracker rule list them all', () => {
    // Services do not cache live sessions: only the admin among them lists them.
    assertAllowed('listResources', request('listResources', { kind: 'session_tracker' }), [...USERS, 'admin']);
    const trackers = request('listResources', { kind: 'session_tracker' });
    assert.equal(authorize('listResources', CALLERS.alice, trackers).on.ownSessionsOnly, true);
    assert.equal(authorize('listResources', CALLERS.superuser, trackers).on.ownSessionsOnly, false);
    assert.equal(authorize('listResources', CALLERS.admin, trackers).on.ownSessionsOnly, false);
  });

  it('hides from a user what its roles do not show, and filters nothing for a service', () => {
    const node = (env: string): Resource =>
      parseAs('node', {
        kind: 'node',
        version: 'v1',
        metadata: { name: `n-${env}`, labels: { env } },
        spec: { hostname: 'h', addr: '', tunnel: true, version: 't' },
      });
    for (const method of ['getResource', 'listResources'] as const) {
      const req = request(method, { kind: 'node', name: 'n-prod' });
      const { visible } = authorize(method, CALLERS.alice, req);
      assert.equal(visible?.(node('dev')), true);
      assert.equal(visible?.(node('prod')), false);
      assert.equal(authorize(method, CALLERS.proxy, req).visible, undefined);
    }
    const tracker = parseAs('session_tracker', {
      kind: 'session_tracker',
      version: 'v1',
      metadata: { name: 's1' },
      spec: {
        server_id: 'n1',
        hostname: 'h',
        user: 'bob',
        login: 'bob',
        started: new Date().toISOString(),
        participants: [{ user: 'bob', mode: 'peer', joined: new Date().toISOString() }],
      },
    });
    const call = authorize('listResources', CALLERS.alice, request('listResources', { kind: 'session_tracker' }));
    assert.equal(call.visible?.(tracker), false);
  });

  it('keeps user administration, tokens, CA rotation, the audit log and recordings to their rules', () => {
    for (const m of ['createUser', 'resetPassword'] as const) {
      assertAllowed(m, request(m), ['editor', 'superuser', 'admin']);
    }
    for (const m of ['createToken', 'rotateCertAuthority', 'searchEvents', 'getRecording'] as const) {
      assertAllowed(m, request(m), ['superuser', 'admin']);
    }
  });

  it('lets only a proxy (or the local admin) submit passwords or act for the web front', () => {
    const proxyOnly = [
      'authenticateUser',
      'createWebSession',
      'getWebSession',
      'deleteWebSession',
      'getUserToken',
      'useUserToken',
    ] as const;
    for (const m of proxyOnly) {
      assertAllowed(m, request(m), ['proxy', 'admin']);
    }
  });

  it('lets a user renew only their own certificates, never past the ones they call with; an admin signs any', () => {
    assertAllowed('generateUserCerts', request('generateUserCerts', { user: 'alice' }), ['alice', 'admin']);
    assertAllowed('generateUserCerts', request('generateUserCerts', { user: 'root' }), ['superuser', 'admin']);
    const own = authorize('generateUserCerts', CALLERS.alice, request('generateUserCerts', { user: 'alice' }));
    assert.equal(own.on.notAfterMs, Date.parse(HOUR_FROM_NOW));
    const signed = authorize('generateUserCerts', CALLERS.admin, request('generateUserCerts', { user: 'alice' }));
    assert.equal(signed.on.notAfterMs, Infinity);
  });

  it('lets every signed-in caller export the public CAs', () => {
    assertAllowed('exportCAs', request('exportCAs'), SIGNED_IN);
  });

  it('lets hosts that joined with a token renew, heartbeat and report as themselves, each within its role', () => {
    assertAllowed('renewHostCerts', request('renewHostCerts'), ['node', 'proxy', 'db']);
    const nodeBeat = request('heartbeat', { resource: resourceJSON('node', 'n1') });
    assertAllowed('heartbeat', nodeBeat, ['node', 'proxy']);
    assert.equal(authorize('heartbeat', CALLERS.proxy, nodeBeat).on.kind, 'proxy'); // a proxy heartbeats a proxy
    assertAllowed('heartbeat', request('heartbeat', { resource: resourceJSON('session_tracker', 's1') }), ['node']);
    const streamed = request('heartbeatStream', { resource: resourceJSON('node', 'n1') });
    assertAllowed('heartbeatStream', streamed, ['node', 'proxy']);
    const removal = outcomes('heartbeatStream', { ...streamed, remove: true });
    assert.equal(removal.node, 'bad: a host does not remove itself: its listing ends when its heartbeats stop');
    assertAllowed('uploadRecording', request('uploadRecording'), ['node']);
    const audit = assertAllowed('emitAuditEvents', request('emitAuditEvents'), ['node', 'proxy']);
    assert.equal(audit.db, 'denied: a db reports no audit events');
    assert.equal(audit.admin, 'denied: a admin reports no audit events');
    assert.equal(audit.alice, 'denied: access denied');
  });

  it('keeps second factors to their own user, and sign-up by link to the proxy', () => {
    for (const m of ['finishMFARegistration', 'listMFADevices', 'deleteMFADevice'] as const) {
      const got = assertAllowed(m, request(m), USERS);
      assert.equal(got.node, 'denied: only users have second factors');
      assert.equal(got.admin, 'denied: only users have second factors');
    }
    assertAllowed('beginMFARegistration', request('beginMFARegistration', { type: 'totp' }), USERS);
    const own = authorize('beginMFARegistration', CALLERS.alice, request('beginMFARegistration'));
    assert.deepEqual(own.on, { user: 'alice' });
    assertAllowed('beginMFARegistration', request('beginMFARegistration', { userToken: 'abc' }), ['proxy', 'admin']);
    const forAlice = request('createAuthenticateChallenge', { user: 'alice' });
    const challenge = assertAllowed('createAuthenticateChallenge', forAlice, ['alice', 'proxy', 'admin']);
    assert.equal(challenge.editor, 'denied: a user asks for challenges for their own devices only');
    const anyone = request('createAuthenticateChallenge');
    const ownChallenge = authorize('createAuthenticateChallenge', CALLERS.alice, anyone);
    assert.deepEqual(ownChallenge.on, { ownDevicesOf: 'alice' });
  });

  it('lets anyone, signed in or not, call Ping and join with a token', () => {
    assertAllowed('ping', request('ping'), EVERYONE);
    assertAllowed('registerUsingToken', request('registerUsingToken'), EVERYONE);
  });
});
