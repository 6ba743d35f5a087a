// Hostile callers of the Auth API, with curl over HTTP/2 and mutual TLS as docs/auth-api.md shows:
// every method of the service (read from the generated descriptor, so a new method is covered the day it
// is added) without a certificate, with the certificate of a user or a node that has no business calling
// it, and with oversized and malformed bodies. Refusals are typed RPC errors without internals; the auth
// server stays up, serves real users, and gives back what the calls cost it.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuthService } from '../../src/api/gen/ward/auth/v1/auth_pb.ts';
import { cleanup, makeTempDir, run, type Cluster } from '../harness.ts';
import { ok, startTarget, type Target } from './fixture.ts';
import { assertSettled, readVitals, type Vitals } from './vitals.ts';

let target: Target;
let cluster: Cluster;
let work: string;
let baseline: Vitals;

interface CurlIdentity {
  cert: string;
  key: string;
}
const ids: Record<'admin' | 'user' | 'node', CurlIdentity> = {} as never;
let caFile: string;

before(async () => {
  work = makeTempDir('ward-sec-api-');
  target = await startTarget();
  cluster = target.cluster;
  caFile = join(work, 'cas.pem');
  writeFileSync(caFile, cluster.adminIdentity().caPems.join(''));
  ids.admin = { cert: join(cluster.dataDir, 'admin', 'tls.crt'), key: join(cluster.dataDir, 'admin', 'tls.key') };
  // A user whose only role grants a login and no rule at all.
  ok(
    await cluster.wctl(['create', '-f', '-'], {
      stdin: 'kind: role\nversion: v1\nmetadata: {name: login-only}\nspec:\n  allow: {logins: [nobody]}\n',
    }),
  );
  ok(await cluster.wctl(['users', 'add', 'norules', '--roles', 'login-only', '--logins', 'nobody']));
  ok(await cluster.wctl(['auth', 'sign', '--user', 'norules', '--format', 'tls', '--out', join(work, 'norules')]));
  ids.user = { cert: join(work, 'norules.crt'), key: join(work, 'norules.key') };
  // The home-lab node's own host identity: a service with the node system role.
  const node = JSON.parse(readFileSync(join(cluster.dataDir, 'node', 'identity.json'), 'utf8')) as {
    tlsKey: string;
    tlsCert: string;
  };
  writeFileSync(join(work, 'node.key'), node.tlsKey, { mode: 0o600 });
  writeFileSync(join(work, 'node.crt'), node.tlsCert);
  ids.node = { cert: join(work, 'node.crt'), key: join(work, 'node.key') };
  baseline = readVitals(cluster.pid);
});

after(cleanup);

const methods = AuthService.methods;

/** Requests that pass every check but the caller's rights: the refusal must be about who calls. */
const SAMPLE: Record<string, unknown> = {
  GetResource: { kind: 'user', name: 'alice' },
  ListResources: { kind: 'user' },
  UpsertResource: {
    resource: {
      json: JSON.stringify({
        kind: 'role',
        version: 'v1',
        metadata: { name: 'pwned' },
        spec: { allow: { logins: ['root'] } },
      }),
    },
  },
  DeleteResource: { kind: 'user', name: 'alice' },
  CreateUser: { name: 'mallory', roles: ['editor'] },
  ResetPassword: { name: 'alice' },
  CreateToken: { roles: ['node'] },
  AuthenticateUser: { user: 'alice', password: 'wrong password' },
  GenerateUserCerts: { user: 'alice' },
  SearchEvents: {},
  Watch: { kinds: ['user'] },
  GetRecording: { sid: '00000000-0000-4000-8000-000000000000' },
};

/** Methods anyone may call: the token or nothing at all is the credential. Everything else needs a certificate. */
const ANONYMOUS_OK = new Set(['Ping', 'RegisterUsingToken']);
/** What a user whose roles grant no rule may still call (their own certificates and second factors, the public CA
 * keys). */
const ANY_USER_OK = new Set([
  ...ANONYMOUS_OK,
  'ExportCAs',
  'GenerateUserCerts',
  'BeginMFARegistration',
  'FinishMFARegistration',
  'ListMFADevices',
  'DeleteMFADevice',
  'CreateAuthenticateChallenge',
]);
/**
 * What a node's host certificate may call: run as a node (heartbeat, audit, recordings, renewing its own host
 * certificate) and read what it caches.
 */
const NODE_OK = new Set([
  ...ANONYMOUS_OK,
  'ExportCAs',
  'Heartbeat',
  'HeartbeatStream',
  'EmitAuditEvents',
  'UploadRecording',
  'GetResource',
  'ListResources',
  'Watch',
  'RenewHostCerts',
]);

interface RPCAnswer {
  status: string;
  code?: string;
  message?: string;
  body: string;
}

/** Connect's envelope for streaming calls: flags, big-endian length, message (connectrpc.com/docs/protocol). */
function envelope(json: Buffer, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

let seq = 0;
/** One call with curl: the Connect protocol, JSON (or raw bytes), over HTTP/2 and mutual TLS. */
async function call(
  method: (typeof methods)[number],
  body: Buffer | unknown,
  who?: CurlIdentity,
  contentType?: string,
): Promise<RPCAnswer> {
  const streaming = method.methodKind !== 'unary';
  let data = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  if (streaming) data = envelope(data);
  const file = join(work, `body-${seq++}`);
  writeFileSync(file, data);
  const out = join(work, `out-${seq++}`);
  const r = await run(
    'curl',
    [
      '-sS',
      '--http2',
      '--max-time',
      '20',
      '--cacert',
      caFile,
      ...(who ? ['--cert', who.cert, '--key', who.key] : []),
      '-H',
      `content-type: ${contentType ?? (streaming ? 'application/connect+json' : 'application/json')}`,
      '--data-binary',
      `@${file}`,
      '-o',
      out,
      '-w',
      '%{http_code}',
      `https://127.0.0.1:${cluster.authAddr.split(':')[1]}/${AuthService.typeName}/${method.name}`,
    ],
    { timeoutMs: 30_000 },
  );
  // A streaming call refused before its request was read ends with the error envelope and then a reset
  // of the stream (we will not read the rest of the body), which curl reports as exit 92.
  const resetAfterAnswer = streaming && r.code === 92;
  assert.ok(r.code === 0 || resetAfterAnswer, `curl ${method.name}: exit ${r.code} ${r.stderr}`);
  let text = readFileSync(out).toString('latin1');
  if (streaming && text.length >= 5) {
    // The last envelope (flag 0x02) ends the stream and carries the error, if any.
    let buf = readFileSync(out);
    let last = '';
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      last = buf.subarray(5, 5 + len).toString('utf8');
      buf = buf.subarray(5 + len);
    }
    text = last;
  }
  let parsed: { code?: string; message?: string; error?: { code?: string; message?: string } } = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the assertions on code will say so
  }
  const err = parsed.error ?? parsed;
  return { status: r.stdout, code: err.code, message: err.message, body: text };
}

/** No refusal leaks a stack trace, a source path or an internal error. */
function assertNoInternals(a: RPCAnswer, what: string): void {
  assert.doesNotMatch(
    a.body,
    /\bat \S+ \(|node_modules|\/src\/|\.ts:\d+/,
    `${what}: internals in the answer: ${a.body.slice(0, 300)}`,
  );
  assert.notEqual(a.code, 'internal', `${what}: internal error: ${a.body.slice(0, 300)}`);
  assert.notEqual(a.code, 'unknown', `${what}: unknown error: ${a.body.slice(0, 300)}`);
}

/** Runs `fn` over every method, a few at a time (each is a curl process). */
async function eachMethod(fn: (m: (typeof methods)[number]) => Promise<void>): Promise<void> {
  const queue = [...methods];
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      for (let m = queue.shift(); m; m = queue.shift()) await fn(m);
    }),
  );
}

describe('the Auth API under hostile callers', () => {
  it('has methods to test, read from the service descriptor', () => {
    assert.ok(methods.length >= 15, `only ${methods.length} methods`);
    for (const name of ['Ping', 'AuthenticateUser', 'Watch'])
      assert.ok(
        methods.some((m) => m.name === name),
        name,
      );
  });

  describe('every method', { concurrency: 1 }, () => {
    it(
      'refuses a caller without a certificate, ' + 'except Ping and RegisterUsingToken, before reading the request',
      async () => {
        await eachMethod(async (m) => {
          for (const body of [SAMPLE[m.name] ?? {}, {}]) {
            const a = await call(m, body);
            assertNoInternals(a, `${m.name} anonymous`);
            if (m.name === 'Ping') assert.equal(a.status, '200', a.body);
            else
              assert.equal(
                a.code,
                'permission_denied',
                `${m.name} without a certificate with ${JSON.stringify(body)}: ${a.status} ${a.body.slice(0, 300)}`,
              );
          }
        });
      },
    );

    it('refuses a user whose roles grant no rule, except what any user may do', async () => {
      await eachMethod(async (m) => {
        if (ANY_USER_OK.has(m.name)) return;
        const a = await call(m, SAMPLE[m.name] ?? {}, ids.user);
        assertNoInternals(a, `${m.name} as user`);
        assert.equal(
          a.code,
          'permission_denied',
          `${m.name} as a user without rules: ${a.status} ${a.body.slice(0, 300)}`,
        );
      });
    });

    it("refuses a node's host certificate what only users and admins may do", async () => {
      await eachMethod(async (m) => {
        if (NODE_OK.has(m.name)) return;
        const a = await call(m, SAMPLE[m.name] ?? {}, ids.node);
        assertNoInternals(a, `${m.name} as node`);
        assert.equal(a.code, 'permission_denied', `${m.name} as a node: ${a.status} ${a.body.slice(0, 300)}`);
      });
    });

    it('refuses a body over 4 MiB with resource_exhausted, even from the admin', async () => {
      const big = Buffer.concat([Buffer.from('{"kind":"'), Buffer.alloc(5 * 1024 * 1024, 'a'), Buffer.from('"}')]);
      await eachMethod(async (m) => {
        const a = await call(m, big, ids.admin);
        assertNoInternals(a, `${m.name} oversized`);
        assert.equal(a.code, 'resource_exhausted', `${m.name} with 5 MiB: ${a.status} ${a.body.slice(0, 300)}`);
      });
    });

    it(
      'refuses malformed JSON, ' +
        'wrongly typed fields and garbage protobuf with invalid_argument, even from the admin',
      async () => {
        const cases: Array<[string, Buffer, string | undefined]> = [
          ['cut-off JSON', Buffer.from('{"kind": "us'), undefined],
          // Every field of the method's request message set to a list of numbers: no field type accepts that.
          ['fields of the wrong type', Buffer.alloc(0), undefined],
          ['JSON that is not an object', Buffer.from('['.repeat(63) + ']'.repeat(66)), undefined],
          [
            'protobuf garbage',
            Buffer.from('0aff ffff ffff ffff ffff 01'.replace(/ /g, ''), 'hex'),
            'application/proto',
          ],
        ];
        await eachMethod(async (m) => {
          for (const [what, given, type] of cases) {
            const fields = m.input.fields.map((f) => [f.jsonName, [1, 2, 3]]);
            if (what === 'fields of the wrong type' && fields.length === 0) continue; // nothing to get wrong
            const body = given.length ? given : Buffer.from(JSON.stringify(Object.fromEntries(fields)));
            const streamingType = type ? 'application/connect+proto' : undefined;
            const a = await call(m, body, ids.admin, m.methodKind === 'unary' ? type : streamingType);
            // connect-es reports an unparsable binary message as `internal` ("parse binary: ...") before any
            // Ward code runs (protocol/serialization.js): wrong code, no internals. Anything else is ours.
            if (type && a.code === 'internal' && /^parse binary: [\w ]+$/.test(a.message ?? '')) continue;
            assertNoInternals(a, `${m.name} ${what}`);
            assert.equal(a.code, 'invalid_argument', `${m.name} with ${what}: ${a.status} ${a.body.slice(0, 300)}`);
          }
        });
      },
    );
  });

  describe('afterwards', () => {
    it('is still up, serves a real user, and has given back its descriptors and memory', async () => {
      await target.assertServing();
      await assertSettled(cluster, baseline, { maxRssGrowthMiB: 96 });
      // Nothing was created by the refused calls.
      const roles = ok(await cluster.wctl(['get', 'roles', '--format', 'json']));
      assert.doesNotMatch(roles, /pwned/);
      const users = ok(await cluster.wctl(['users', 'ls']));
      assert.doesNotMatch(users, /mallory/);
    });
  });
});
