// End to end: one real `ward start` (auth + proxy) driven by the real wctl and wsh, by ssh-keygen and
// openssl, and by raw Auth API calls for what no CLI exposes. One cluster for the whole file keeps it
// fast; groups of tests that touch different users run side by side.
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYAML } from 'yaml';
import { AccessDenied } from '../src/api/errors.ts';
import { readIdentityFile } from '../src/cli/identity-file.ts';
import type { TLSIdentity } from '../src/api/client.ts';
import { generateClientKeys } from '../src/crypto/clientkeys.ts';
import { createTLSCA, generateTLSKey, issueTLSCert } from '../src/crypto/x509.ts';
import {
  BIN,
  cleanup,
  errorLines,
  makeTempDir,
  poll,
  readTLSIdentity,
  run,
  startCluster,
  ward,
  type Cluster,
  type RunResult,
} from './harness.ts';

// ---- small assertions on command results ----

function ok(r: RunResult): string {
  assert.equal(
    r.code,
    0,
    `expected success, got exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
  );
  return r.stdout;
}

/** A refusal as a user should see it: non-zero exit, exactly one line of explanation, no stack trace. */
function fails(r: RunResult, pattern: RegExp): string {
  assert.equal(r.timedOut, false, `command hung\nstderr: ${r.stderr}`);
  assert.ok(
    r.code !== 0 && r.code !== null,
    `expected failure, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
  );
  assert.ok(!r.stderr.includes('    at '), `stack trace on stderr:\n${r.stderr}`);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, `expected one line of explanation, got:\n${lines.join('\n')}`);
  assert.match(lines[0]!, pattern);
  return lines[0]!;
}

function fileMode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** The signing key column of the "Authority  Signing key  Rotation" table `wctl status` prints (columns: 2+ spaces). */
function statusFingerprints(status: string): Record<string, string> {
  return Object.fromEntries(
    [...status.matchAll(/^(user|host|tls|db|jwt) CA +(.+?)\s*$/gm)].map((m) => [m[1]!, m[2]!.split(/ {2,}/)[0]!]),
  );
}

async function sshKeygenFingerprint(file: string): Promise<string> {
  const out = ok(await run('ssh-keygen', ['-l', '-f', file]));
  return out.split(/\s+/)[1]!;
}

interface SSHCertInfo {
  text: string;
  keyId: string;
  principals: string[];
  extensions: string[];
  from: Date;
  to: Date;
  signingCA: string;
}

/** What `ssh-keygen -L` says about a certificate (run with TZ=UTC by the harness). */
async function sshKeygenL(certFile: string): Promise<SSHCertInfo> {
  const text = ok(await run('ssh-keygen', ['-L', '-f', certFile]));
  const valid = /Valid: from (\S+) to (\S+)/.exec(text);
  assert.ok(valid, text);
  const section = (start: string, end: string) =>
    (text.split(start)[1] ?? '')
      .split(end)[0]!
      .split('\n')
      .map((l) => l.trim().split(' ')[0]!)
      .filter(Boolean);
  return {
    text,
    keyId: /Key ID: "([^"]*)"/.exec(text)?.[1] ?? '',
    principals: section('Principals:', 'Critical Options:'),
    extensions: section('Extensions:', '\u0000'),
    from: new Date(`${valid[1]}Z`),
    to: new Date(`${valid[2]}Z`),
    signingCA: /Signing CA: \S+ (SHA256:\S+)/.exec(text)?.[1] ?? '',
  };
}

function assertNear(actual: Date, expected: number, slackMs: number, what: string): void {
  assert.ok(
    Math.abs(actual.getTime() - expected) <= slackMs,
    `${what}: ${actual.toISOString()} is not within ${slackMs}ms of ${new Date(expected).toISOString()}`,
  );
}

function httpsGet(addr: string, path: string, ca: string[]): Promise<{ status: number; body: string }> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const req = https.get({ host, port: Number(port), path, ca, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

/** Opens a raw TCP connection, sends `bytes`, and resolves with how long the proxy took to close it. */
function sendAndAwaitClose(addr: string, bytes: Buffer, timeoutMs: number): Promise<number> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ host, port: Number(port) }, () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the proxy kept the connection open for ${timeoutMs}ms`));
    }, timeoutMs);
    socket.on('data', () => undefined);
    socket.on('error', () => undefined); // a reset is a close too
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

async function waitForClockPast(when: Date): Promise<void> {
  await poll(
    `the clock to pass ${when.toISOString()}`,
    async () => (Date.now() > when.getTime() + 1000 ? true : undefined),
    10_000,
    100,
  );
}

// ---- the cluster and its users ----

let main: Cluster;
let work: string;
/** Every secret handed to Ward in this file; none may show up in its log. */
const secrets: string[] = [];

function newPassword(): string {
  const pw = `pw-${randomBytes(12).toString('base64url')}`;
  secrets.push(pw);
  return pw;
}

/** A user for a test to act as. Through the API: each wctl run costs ~0.6s of CPU, and `wctl users add` has its own
 * tests. */
async function addUser(name: string, roles: string, logins: string): Promise<string> {
  const password = newPassword();
  const list = (s: string) => s.split(',').filter(Boolean);
  await main.adminClient().createUser({ name, roles: list(roles), logins: list(logins), password });
  return password;
}

/** A user's TLS identity, minted by the admin in-process (as `wctl auth sign --format tls` does, without its ~0.6s
 * start). */
async function issueTLSIdentity(user: string): Promise<TLSIdentity> {
  const keys = generateClientKeys(user);
  const certs = await main
    .adminClient()
    .generateUserCerts({ user, sshPublicKey: keys.sshPublicKey, tlsPublicKey: keys.tlsPublicKey, ttlSeconds: 3600 });
  return { keyPem: keys.tlsKey, certPem: certs.tlsCert, caPems: certs.tlsCas };
}

async function createRole(yaml: string): Promise<void> {
  await main.adminClient().upsertResource({ resource: { json: JSON.stringify(parseYAML(yaml)) }, overwrite: false });
}

async function login(
  home: string,
  user: string,
  password: string,
  extra: string[] = ['--ca-pin', main.caPin],
): Promise<RunResult> {
  return main.wsh(home, ['login', '--proxy', main.proxyAddr, '--user', user, '--password-stdin', ...extra], {
    stdin: `${password}\n`,
  });
}

/** The one answer to every failed sign-in (src/auth/login.ts), as wsh prints it. */
const SIGNIN_DENIED =
  /^ERROR: access denied: invalid user name, password or second-factor code, or too many failed sign-ins from this address$/;

async function loginEvents(user: string): Promise<Array<Record<string, unknown>>> {
  const res = await main.adminClient().searchEvents({ types: ['user.login', 'user.login_locked'], user, limit: 100 });
  return res.events.map((e) => JSON.parse(e) as Record<string, unknown>);
}

let alicePassword: string;
/** The CA fingerprints `wctl status` printed at first start. */
let fingerprints: Record<string, string>;

before(async () => {
  main = await startCluster({ clusterName: 'e2e', lockout: { max_attempts: 3 } });
  fingerprints = statusFingerprints(main.statusAtStart);
  work = makeTempDir('ward-e2e-work-');
  alicePassword = newPassword();
  const added = await main.wctl(
    ['users', 'add', 'alice', '--roles', 'access,editor', '--logins', 'root,alice', '--password-stdin'],
    { stdin: `${alicePassword}\n` },
  );
  assert.match(ok(added), /^User "alice" has been created\.\n$/, 'no one-time password when one is given');
  await addUser('bob', 'access', 'bob');
});

after(cleanup);

describe('a Ward cluster', () => {
  describe('first start and restart', () => {
    it('creates its certificate authorities on first start and says how to go on', async () => {
      assert.match(main.stdout, /Ward is running: cluster "e2e"/);
      assert.match(main.stdout, new RegExp(`wsh login --proxy ${main.proxyAddr} --user alice --ca-pin ${main.caPin}`));
      assert.equal(main.log.match(/created certificate authority/g)?.length, 5);
      const status = main.statusAtStart;
      assert.match(status, /^Cluster: +e2e$/m);
      assert.match(status, new RegExp(`^CA pin: +${main.caPin}$`, 'm'));
      assert.deepEqual(Object.keys(fingerprints).sort(), ['db', 'host', 'jwt', 'tls', 'user']);
      assert.match(fingerprints.user!, /^SHA256:[A-Za-z0-9+/]{43}$/);
      assert.equal(fingerprints.tls, main.caPin);
    });

    it('shows SSH CA fingerprints exactly as ssh-keygen -lf computes them', async () => {
      const userCA = join(work, 'user-ca.pub');
      writeFileSync(userCA, ok(await main.wctl(['auth', 'export', '--type', 'user'])));
      assert.equal(await sshKeygenFingerprint(userCA), fingerprints.user);
      // The host CA is exported as known_hosts lines; ssh-keygen -lf takes the bare key.
      const hostCA = join(work, 'host-ca.pub');
      const hostLine = ok(await main.wctl(['auth', 'export', '--type', 'host']));
      assert.match(hostLine, /^@cert-authority \* ssh-ed25519 /);
      writeFileSync(hostCA, hostLine.replace(/^@cert-authority \* /, ''));
      assert.equal(await sshKeygenFingerprint(hostCA), fingerprints.host);
    });

    it('stops cleanly on SIGTERM and keeps its CAs and users when restarted on the same data dir', async () => {
      await addUser('survivor', 'access', 'survivor');
      const pin = main.caPin;
      const stopCode = await main.restart();
      assert.equal(stopCode, 0, 'ward exits 0 after SIGTERM');
      assert.match(main.log, /received SIGTERM, stopping/);
      assert.deepEqual(statusFingerprints(main.statusAtStart), fingerprints);
      assert.equal(main.caPin, pin);
      assert.equal(main.log.match(/created certificate authority/g)?.length, 5, 'no CA is created again');
      assert.match(ok(await main.wctl(['users', 'ls'])), /^survivor +access +survivor/m);
    });
  });

  describe('what runs side by side', { concurrency: 3 }, () => {
    describe('ward.yaml and start-up errors', { concurrency: 1 }, () => {
      async function startWith(yaml: string, dataDir?: string): Promise<RunResult> {
        const dir = makeTempDir('ward-e2e-start-');
        const config = join(dir, 'ward.yaml');
        writeFileSync(config, yaml);
        return ward(['start', '-c', config, '-d', dataDir ?? join(dir, 'data')], { timeoutMs: 15_000 });
      }
      const loopback =
        'auth_service:\n  listen_addr: 127.0.0.1:0\nproxy_service:\n  listen_addr: 127.0.0.1:0\nssh_service:\n  ' +
        'enabled: false\n';

      it('prints a sample ward.yaml that ward start accepts', async () => {
        const sample = ok(await ward(['configure']));
        assert.match(sample, /^auth_service:$/m);
        // Only the listen addresses change, so the test can run next to anything else on this host.
        const yaml = sample.replace(/^(\s+)listen_addr: \S+$/gm, '$1listen_addr: 127.0.0.1:0');
        assert.equal(
          yaml.match(/^\s+listen_addr: 127\.0\.0\.1:0$/gm)?.length,
          3,
          "the three services' listen addresses (comments aside)",
        );
        const home = await startCluster({ config: yaml });
        assert.equal(home.clusterName, 'home');
        assert.match(home.statusAtStart, /^Cluster: +home$/m);
        assert.equal(await home.stop(), 0);
        fails(await home.wctl(['status']), /cannot reach the auth server: .*ECONNREFUSED/);
        await home.destroy();
      });

      it('refuses a value of the wrong type, naming its path in one line', async () => {
        const line = fails(await startWith('auth_service:\n  listen_addr: 3025\n'), /auth_service\.listen_addr/);
        assert.match(line, /expected string/);
        fails(
          await startWith('auth_service:\n  lockout:\n    max_attempts: three\n'),
          /auth_service\.lockout\.max_attempts/,
        );
        for (const ttl of ['5s', '400d', 'forever']) {
          fails(
            await startWith(`auth_service:\n  host_cert_ttl: ${ttl}\n`),
            /auth_service\.host_cert_ttl: must be a duration from 20s to 365d/,
          );
        }
      });

      it('refuses an unknown key, naming it', async () => {
        fails(
          await startWith('proxy_service:\n  listen_adress: 127.0.0.1:0\n'),
          /proxy_service\.listen_adress: unknown key/,
        );
        fails(await startWith('colour: blue\n'), /colour: unknown key/);
      });

      it('refuses a ward.yaml that is not YAML, or that does not exist', async () => {
        fails(await startWith('auth_service: [\n'), /is not valid YAML/);
        fails(await ward(['start', '-c', join(work, 'no-such.yaml')]), /cannot read config .*no-such\.yaml: ENOENT/);
      });

      it('says in one line that a port is already in use', async () => {
        const proxyTaken =
          `auth_service:\n  listen_addr: 127.0.0.1:0\nproxy_service:\n  listen_addr: ` +
          `${main.proxyAddr}\nssh_service:\n  enabled: false\n`;
        fails(await startWith(proxyTaken), new RegExp(`cannot start the proxy: ${main.proxyAddr} is already in use`));
        const authTaken =
          `auth_service:\n  listen_addr: ${main.authAddr}\nproxy_service:\n  listen_addr: ` +
          `127.0.0.1:0\nssh_service:\n  enabled: false\n`;
        fails(await startWith(authTaken), new RegExp(`cannot start the auth API: ${main.authAddr} is already in use`));
      });

      it('refuses a data dir that is a file', async () => {
        const file = join(makeTempDir(), 'not-a-dir');
        writeFileSync(file, 'x');
        fails(await startWith(loopback, file), /data dir .*not-a-dir is not usable: it is not a directory/);
      });

      it(
        'refuses a second process on a data dir in use, and a second auth server on a ward.db in use, before ' +
          'touching either',
        async () => {
          fails(
            await startWith(loopback, main.dataDir),
            new RegExp(`^ERROR: data dir ${main.dataDir} is in use by another ward process$`),
          );
          // Another data dir, the same database (auth_service.storage.path).
          const db = join(main.dataDir, 'ward.db');
          const sameDB = loopback.replace('auth_service:\n', `auth_service:\n  storage: {type: sqlite, path: ${db}}\n`);
          fails(
            await startWith(sameDB),
            new RegExp(
              `^ERROR: ${db} is in use by another Ward auth server \\(SQLite serves one; run several on PostgreSQL\\)$`,
            ),
          );
          ok(await main.wctl(['status']));
        },
      );

      it('refuses a corrupt ward.db', async () => {
        const dataDir = join(makeTempDir(), 'data');
        mkdirSync(dataDir);
        writeFileSync(join(dataDir, 'ward.db'), 'this is not a database, just some bytes '.repeat(200));
        fails(await startWith(loopback, dataDir), /ward\.db is not a usable SQLite database/);
      });
    });

    describe('users and roles with wctl', { concurrency: 1 }, () => {
      it('ships the built-in roles access, editor and auditor', async () => {
        const roles = JSON.parse(ok(await main.wctl(['get', 'roles', '--format', 'json']))) as Array<{
          metadata: { name: string };
        }>;
        const names = roles.map((r) => r.metadata.name);
        for (const builtin of ['access', 'editor', 'auditor'])
          assert.ok(names.includes(builtin), `${builtin} in ${names.join(',')}`);
        assert.match(ok(await main.wctl(['get', 'roles', '--format', 'text'])), /^access +\{\{internal\.logins\}\}/m);
      });

      it('adds, lists and removes users', async () => {
        const added = ok(await main.wctl(['users', 'add', 'uma', '--roles', 'access', '--logins', 'uma,ops']));
        assert.match(added, /User "uma" has been created\./);
        // No password given: an invite link, with which the user sets one in the browser (test/web.test.ts).
        const invite = /^https:\/\/\S+\/web\/invite\/([0-9a-f]{64})$/m.exec(added)?.[1];
        assert.ok(invite, `an invite link is printed:\n${added}`);
        secrets.push(invite);
        assert.match(ok(await main.wctl(['users', 'ls'])), /^uma +access +uma,ops/m);
        const users = JSON.parse(ok(await main.wctl(['users', 'ls', '--format', 'json']))) as Array<{
          metadata: { name: string };
          spec: { traits: { logins: string[] } };
        }>;
        assert.deepEqual(users.find((u) => u.metadata.name === 'uma')?.spec.traits.logins, ['uma', 'ops']);
        assert.equal(
          parseYAML(ok(await main.wctl(['get', 'users', 'uma', '--format', 'yaml']))).spec.roles[0],
          'access',
        );
        assert.match(ok(await main.wctl(['users', 'rm', 'uma'])), /User "uma" has been deleted\./);
        fails(await main.wctl(['get', 'users', 'uma']), /user "uma" not found/);
        fails(await main.wctl(['users', 'rm', 'uma']), /user "uma" not found/);
      });

      it('refuses a user name it cannot store, and keeps listing users', async () => {
        fails(
          await main.wctl(['users', 'add', 'bad name!', '--roles', 'access']),
          /invalid user: metadata\.name: must be 1-128 letters/,
        );
        assert.match(ok(await main.wctl(['users', 'ls'])), /^alice +access,editor/m);
      });

      it('refuses a user whose role does not exist', async () => {
        fails(
          await main.wctl(['users', 'add', 'vera', '--roles', 'no-such-role'], { stdin: '' }),
          /unknown role .*no-such-role/,
        );
        const file = join(work, 'vera.yaml');
        writeFileSync(file, 'kind: user\nversion: v1\nmetadata: {name: vera}\nspec: {roles: [no-such-role]}\n');
        fails(await main.wctl(['create', '-f', file]), /user "vera" names a role that does not exist/);
      });

      it('creates roles and users from YAML, and overwrites them only with --force', async () => {
        const file = join(work, 'dev.yaml');
        const doc = (ttl: string) =>
          `kind: role\nversion: v1\nmetadata: {name: dev}\nspec:\n  options: {max_session_ttl: ${ttl}}\n  allow: ` +
          `{logins: [dev]}\n---\n` +
          `kind: user\nversion: v1\nmetadata: {name: dora}\nspec: {roles: [dev]}\n`;
        writeFileSync(file, doc('4h'));
        const created = ok(await main.wctl(['create', '-f', file]));
        assert.match(created, /role "dev" has been created\./);
        assert.match(created, /user "dora" has been created\./);
        fails(await main.wctl(['create', '-f', file]), /role "dev" already exists/);
        writeFileSync(file, doc('2h'));
        assert.match(
          ok(await main.wctl(['create', '-f', file, '--force'])),
          /role "dev" has been created or updated\./,
        );
        const yaml = parseYAML(ok(await main.wctl(['get', 'roles', 'dev', '--format', 'yaml'])));
        assert.equal(yaml.spec.options.max_session_ttl, '2h');
        const json = JSON.parse(ok(await main.wctl(['get', 'role', 'dev', '--format', 'json'])));
        assert.deepEqual(json.spec.allow.logins, ['dev']);
        assert.match(ok(await main.wctl(['get', 'roles', 'dev', '--format', 'text'])), /^dev +dev +\{\} +2h/m);
        assert.match(ok(await main.wctl(['get', 'users', 'dora', '--format', 'text'])), /^dora +dev/m);
      });

      it('deletes a role with wctl rm role/NAME', async () => {
        await createRole('kind: role\nversion: v1\nmetadata: {name: gone}\nspec: {}\n');
        assert.match(ok(await main.wctl(['rm', 'role/gone'])), /role "gone" has been deleted\./);
        fails(await main.wctl(['get', 'roles', 'gone']), /role "gone" not found/);
        fails(await main.wctl(['rm', 'role/gone']), /role "gone" not found/);
        fails(await main.wctl(['rm', 'gone']), /expected KIND\/NAME/);
      });
    });

    describe('wctl input and output', { concurrency: 1 }, () => {
      it('names the document that is wrong and creates nothing from a bad file', async () => {
        const good = 'kind: role\nversion: v1\nmetadata: {name: first-ok}\nspec: {}\n';
        const notYAML = join(work, 'bad-yaml.yaml');
        writeFileSync(notYAML, `${good}---\nkind: role\n  metadata: [\n`);
        fails(await main.wctl(['create', '-f', notYAML]), /document 2 is not valid YAML/);
        const badShape = join(work, 'bad-shape.yaml');
        writeFileSync(
          badShape,
          `${good}---\nkind: role\nversion: v1\nmetadata: {name: second}\nspec: {allow: {logins: 5}}\n`,
        );
        fails(await main.wctl(['create', '-f', badShape]), /document 2: invalid role: spec\.allow\.logins/);
        writeFileSync(
          badShape,
          `${good}---\nkind: role\nversion: v1\nmetadata: {name: second}\nspec: {allow: {login: [x]}}\n`,
        );
        fails(await main.wctl(['create', '-f', badShape]), /document 2: invalid role: spec\.allow\.login: unknown key/);
        fails(await main.wctl(['get', 'roles', 'first-ok']), /role "first-ok" not found/);
      });

      it('shows certificate authorities without their private keys', async () => {
        const out = ok(await main.wctl(['get', 'cas', '--format', 'json']));
        const cas = JSON.parse(out) as Array<{ spec: { type: string; active_keys: Array<Record<string, string>> } }>;
        assert.deepEqual(cas.map((c) => c.spec.type).sort(), ['db', 'host', 'jwt', 'tls', 'user']);
        assert.ok(cas.every((c) => c.spec.active_keys.every((k) => !('private' in k))));
        assert.doesNotMatch(out, /PRIVATE KEY/);
        assert.match(ok(await main.wctl(['get', 'cas', 'tls', '--format', 'yaml'])), /BEGIN CERTIFICATE/);
        assert.match(ok(await main.wctl(['get', 'cas', '--format', 'text'])), /^user +e2e +SHA256:\S+ +standby/m);
      });

      it('tells someone without a local admin identity how to connect', async () => {
        const r = await run(join(BIN, 'wctl'), ['-d', makeTempDir(), 'status']);
        fails(
          r,
          /no local admin identity at .*: run wctl on the auth host .*or pass -i IDENTITY --auth-server HOST:PORT/,
        );
      });

      it('starts a usage error with ERROR: and follows it with the usage, in subcommands too', async () => {
        const r = await main.wctl(['users', 'add', 'nora']);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /^ERROR: required option '--roles <r1,r2>' not specified\n/);
        assert.match(r.stderr, /Usage: wctl users add \[options\] <name>/);
        assert.match(
          (await main.wsh(main.newWshHome(), ['login', '--pasword-stdin'])).stderr,
          /^ERROR: unknown option '--pasword-stdin'/,
        );
      });

      it('rejects unknown kinds and formats with the accepted ones', async () => {
        fails(await main.wctl(['get', 'frobs']), /unknown resource kind "frobs" \(expected one of: roles, users/);
        fails(
          await main.wctl(['get', 'roles', '--format', 'xml']),
          /unknown format "xml" \(expected text, yaml or json\)/,
        );
      });
    });

    describe('join tokens', { concurrency: 1 }, () => {
      it('creates a node token, prints how to join with it, lists it and removes it', async () => {
        const out = ok(await main.wctl(['tokens', 'add', '--type', 'node', '--ttl', '5m']));
        const token = /The join token ([0-9a-f]{32}) \(node\) expires in 5m\./.exec(out)?.[1];
        assert.ok(token, out);
        secrets.push(token);
        assert.match(out, new RegExp(`^ +ward start .*--token ${token}`, 'm'));
        const row = new RegExp(`^${token} +node +(\\S+)`, 'm').exec(ok(await main.wctl(['tokens', 'ls'])));
        assert.ok(row, 'tokens ls shows it');
        assertNear(new Date(row[1]!), Date.now() + 5 * 60_000, 30_000, 'token expiry');
        const json = JSON.parse(ok(await main.wctl(['get', 'tokens', token, '--format', 'json'])));
        assert.deepEqual(json.spec.roles, ['node']);
        assert.match(ok(await main.wctl(['tokens', 'rm', token])), new RegExp(`Token ${token} has been deleted\\.`));
        assert.doesNotMatch(ok(await main.wctl(['tokens', 'ls'])), new RegExp(token));
        fails(await main.wctl(['get', 'tokens', token]), /not found/);
      });

      it('refuses an unknown token type, and a lifetime over 7 days', async () => {
        fails(await main.wctl(['tokens', 'add', '--type', 'toaster']), /unknown token type "toaster"/);
        fails(
          await main.wctl(['tokens', 'add', '--type', 'node', '--ttl', '8d']),
          /token TTL must be between 1s and 7 days/,
        );
        // Past 2^32 seconds it could not even be sent: refused on reading, not as an encoding error.
        fails(await main.wctl(['tokens', 'add', '--type', 'node', '--ttl', '99999d']), /duration "99999d" is too long/);
      });
    });

    describe('wctl auth sign', { concurrency: 1 }, () => {
      it("mints an OpenSSH certificate that ssh-keygen reads as the user's", async () => {
        const out = join(work, 'alice-ssh');
        assert.match(
          ok(await main.wctl(['auth', 'sign', '--user', 'alice', '--format', 'openssh', '--ttl', '1h', '--out', out])),
          /valid for 1h/,
        );
        const issued = Date.now();
        assert.equal(fileMode(out), 0o600, 'private key is 0600');
        const cert = await sshKeygenL(`${out}-cert.pub`);
        assert.match(cert.text, /ssh-ed25519-cert-v01@openssh\.com user certificate/);
        assert.equal(cert.keyId, 'alice');
        assert.deepEqual(cert.principals.sort(), ['alice', 'root']);
        assertNear(cert.to, issued + 3_600_000, 60_000, 'valid before');
        assert.ok(cert.from.getTime() <= issued, 'valid from the past (clock skew)');
        assert.ok(cert.extensions.includes('permit-pty'), cert.text);
        assert.ok(cert.extensions.includes('ward-roles@ward.dev'), cert.text);
        assert.equal(cert.signingCA, fingerprints.user);
        assert.match(ok(await run('ssh-keygen', ['-y', '-f', out])), /^ssh-ed25519 /);
      });

      it('mints an X.509 certificate that openssl verifies against the exported TLS CA', async () => {
        const out = join(work, 'alice-tls');
        ok(await main.wctl(['auth', 'sign', '--user', 'alice', '--format', 'tls', '--ttl', '1h', '--out', out]));
        const issued = Date.now();
        assert.equal(fileMode(`${out}.key`), 0o600);
        const caFile = join(work, 'tls-ca.pem');
        writeFileSync(caFile, ok(await main.wctl(['auth', 'export', '--type', 'tls'])));
        assert.equal(ok(await run('openssl', ['verify', '-CAfile', caFile, `${out}.crt`])).trim(), `${out}.crt: OK`);
        const text = ok(await run('openssl', ['x509', '-in', `${out}.crt`, '-noout', '-text']));
        const identity = JSON.parse(/(\{"username".*\})/.exec(text)?.[1] ?? 'null');
        assert.equal(identity.username, 'alice');
        assert.deepEqual(identity.roles, ['access', 'editor']);
        assert.deepEqual(identity.logins, ['root', 'alice']);
        assert.equal(identity.cluster, 'e2e');
        assert.equal(identity.kind, 'user');
        assertNear(
          new Date(new X509Certificate(readFileSync(`${out}.crt`)).validTo),
          issued + 3_600_000,
          60_000,
          'notAfter',
        );
      });

      it('mints an identity file that wsh, wctl and ssh-keygen all accept', async () => {
        const id = join(work, 'alice.id');
        ok(await main.wctl(['auth', 'sign', '--user', 'alice', '--out', id]));
        assert.equal(fileMode(id), 0o600);
        const status = ok(await main.wsh(main.newWshHome(), ['-i', id, 'status']));
        assert.match(status, /^ +Cluster: +e2e$/m);
        assert.match(status, /^ +User: +alice$/m);
        assert.match(status, /^ +Roles: +access, editor$/m);
        assert.match(status, /^ +Logins: +root, alice$/m);
        assert.match(status, /Valid until: .*\[valid for (59m|1h)/);
        // Through the proxy: the auth API is passed through on ALPN ward-auth.
        const roles = ok(await main.wctlAs(id, ['get', 'roles', '--format', 'text']));
        for (const r of ['access', 'editor', 'auditor']) assert.match(roles, new RegExp(`^${r} `, 'm'));
        assert.match(ok(await run('ssh-keygen', ['-y', '-f', id])), /^ssh-ed25519 /);
      });

      it('gives an access-only user an identity that cannot manage the cluster', async () => {
        const id = join(work, 'bob.id');
        ok(await main.wctl(['auth', 'sign', '--user', 'bob', '--out', id]));
        fails(await main.wctlAs(id, ['get', 'users']), /access denied: no role allows list on user/);
        fails(
          await main.wctlAs(id, ['users', 'add', 'mallory', '--roles', 'editor']),
          /access denied: no role allows create on user/,
        );
        fails(await main.wctl(['get', 'users', 'mallory']), /not found/);
      });

      it('refuses to sign for a user that does not exist', async () => {
        fails(
          await main.wctl(['auth', 'sign', '--user', 'nobody', '--out', join(work, 'nobody.id')]),
          /user "nobody" not found/,
        );
        assert.equal(existsSync(join(work, 'nobody.id')), false);
      });
    });

    describe('a server that accepts connections and never answers', () => {
      let silent: net.Server;
      let addr: string;
      const held = new Set<net.Socket>();
      before(async () => {
        silent = net
          .createServer((socket) => void held.add(socket.on('error', () => undefined)))
          .listen(0, '127.0.0.1');
        await new Promise((r) => silent.once('listening', r));
        addr = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
      });
      after(() => {
        silent.close();
        for (const socket of held) socket.destroy();
      });

      it(
        'ends wsh login and wctl with one line each, ' + 'within their timeouts, instead of holding them open',
        async () => {
          const timed = async (what: Promise<RunResult>) => {
            const t = Date.now();
            return { r: await what, s: (Date.now() - t) / 1000 };
          };
          const [pin, insecure, admin] = await Promise.all([
            timed(main.wsh(main.newWshHome(), ['login', '--proxy', addr, '--user', 'alice'], { timeoutMs: 60_000 })),
            timed(
              main.wsh(main.newWshHome(), ['login', '--proxy', addr, '--user', 'alice', '--insecure'], {
                timeoutMs: 60_000,
              }),
            ),
            timed(main.wctl(['--auth-server', addr, 'status'], { timeoutMs: 60_000 })),
          ]);
          fails(pin.r, new RegExp(`^ERROR: the proxy at ${addr} did not answer in 10s$`));
          // --insecure warns first, as it always does.
          fails(
            { ...insecure.r, stderr: insecure.r.stderr.replace(/^WARNING: --insecure: .*\n/, '') },
            new RegExp(`^ERROR: the proxy at ${addr} did not answer in 30s$`),
          );
          fails(admin.r, /^ERROR: cannot reach the auth server: the operation timed out$/);
          // Each bound, plus a process start-up on a loaded box; before, wctl and --insecure stayed up another 30-45 s.
          for (const [name, { s }, bound] of [
            ['pin', pin, 10],
            ['insecure', insecure, 30],
            ['wctl', admin, 15],
          ] as const) {
            assert.ok(s < bound + 8, `${name} took ${s}s`);
          }
        },
      );
    });

    describe('wsh login', { concurrency: 1 }, () => {
      let ginaPassword: string;
      before(async () => {
        await createRole(
          'kind: role\nversion: v1\nmetadata: {name: half-hour}\nspec:\n  options: {max_session_ttl: 30m}\n  ' +
            'allow: {logins: [deploy]}\n',
        );
        ginaPassword = await addUser('gina', 'half-hour', '');
      });

      it('logs in with a password and the CA pin, shows the login, and logs out', async () => {
        const home = main.newWshHome();
        const out = ok(await login(home, 'alice', alicePassword));
        const issued = Date.now();
        // alice's editor role caps the default 12h at 8h.
        assert.match(
          out,
          new RegExp(`Logged in as alice to cluster "e2e" via ${main.proxyAddr}; certificates valid for 8h\\.`),
        );
        const keys = /Keys: (\S+)/.exec(out)?.[1];
        assert.ok(keys && keys.startsWith(home), out);
        assert.equal(fileMode(join(keys, 'id')), 0o600);
        assert.equal(fileMode(join(keys, 'tls.key')), 0o600);
        const status = ok(await main.wsh(home, ['status']));
        assert.match(status, new RegExp(`^> Profile: ${main.proxyAddr}$`, 'm'));
        assert.match(status, /^ +Cluster: +e2e$/m);
        assert.match(status, /^ +User: +alice$/m);
        assert.match(status, /^ +Roles: +access, editor$/m);
        assert.match(status, /^ +Logins: +root, alice$/m);
        const until = /Valid until: (\S+) \[valid for (7h59m|8h)/.exec(status);
        assert.ok(until, status);
        assertNear(new Date(until[1]!), issued + 8 * 3_600_000, 60_000, 'expiry');

        assert.match(ok(await main.wsh(home, ['logout'])), new RegExp(`Logged out alice from ${main.proxyAddr}\\.`));
        assert.equal(existsSync(keys), false, 'keys removed');
        assert.equal(existsSync(join(home, 'profile.json')), false, 'profile removed');
        fails(await main.wsh(home, ['status']), /not logged in/);
        // The CA stays pinned, as known_hosts keeps a host key: the next login needs no --ca-pin.
        ok(await login(home, 'alice', alicePassword, []));
      });

      it("caps --ttl 1h at the 30m max_session_ttl of the user's role", async () => {
        const home = main.newWshHome();
        const out = ok(
          await main.wsh(
            home,
            [
              'login',
              '--proxy',
              main.proxyAddr,
              '--user',
              'gina',
              '--password-stdin',
              '--ca-pin',
              main.caPin,
              '--ttl',
              '1h',
            ],
            { stdin: ginaPassword },
          ),
        );
        const issued = Date.now();
        assert.match(out, /certificates valid for 30m\./);
        const until = /Valid until: (\S+)/.exec(ok(await main.wsh(home, ['status'])))?.[1];
        assert.ok(until);
        assert.ok(new Date(until).getTime() <= issued + 30 * 60_000 + 1_000, `${until} is more than 30m away`);
        assert.match(
          ok(await main.wctl(['auth', 'sign', '--user', 'gina', '--ttl', '1h', '--out', join(work, 'gina.id')])),
          /valid for 30m/,
        );
      });

      it('refuses an unpinned proxy when it cannot ask (no TTY), pointing at --ca-pin', async () => {
        const home = main.newWshHome();
        const line = fails(await login(home, 'alice', alicePassword, []), /--ca-pin/);
        assert.ok(line.includes(main.caPin), 'shows the CA pin it saw, to compare with wctl status');
        assert.equal(existsSync(join(home, 'profile.json')), false);
      });

      it('refuses a proxy whose CA is not the pinned one, as an interception', async () => {
        const home = main.newWshHome();
        fails(await login(home, 'alice', alicePassword, ['--ca-pin', `sha256:${'0'.repeat(64)}`]), /intercepting/);
        assert.equal(existsSync(join(home, 'profile.json')), false);
      });

      it('logs in with --insecure, with a warning', async () => {
        const home = main.newWshHome();
        const r = await login(home, 'alice', alicePassword, ['--insecure']);
        ok(r);
        assert.match(r.stderr, /^WARNING: --insecure/m);
        assert.match(ok(await main.wsh(home, ['status'])), /^ +User: +alice$/m);
      });
    });

    describe('password login failures', { concurrency: 1 }, () => {
      it('refuses a wrong password, says the same for an unknown user, and audits both', async () => {
        const password = await addUser('walt', 'access', 'walt');
        const wrong = newPassword();
        const home = main.newWshHome();
        const badPassword = fails(await login(home, 'walt', wrong), SIGNIN_DENIED);
        const unknownUser = fails(await login(home, 'nobody-here', wrong), /access denied/);
        assert.equal(unknownUser, badPassword, 'the answer does not reveal whether the user exists');
        assert.equal(existsSync(join(home, 'profile.json')), false);

        const walt = (await loginEvents('walt')).filter((e) => e.event === 'user.login');
        assert.equal(walt.length, 1);
        assert.equal(walt[0]!.success, false);
        assert.equal(walt[0]!.code, 'WU1000W');
        assert.equal(walt[0]!.error, 'bad password');
        const nobody = await loginEvents('nobody-here');
        assert.equal(nobody[0]?.error, 'unknown user');
        assert.ok(
          ![...walt, ...nobody].some((e) => JSON.stringify(e).includes(wrong)),
          'the password is not in the audit log',
        );

        ok(await login(home, 'walt', password));
        assert.equal(
          (await loginEvents('walt')).filter((e) => e.success === true).length,
          1,
          'a success is audited too',
        );
      });

      it('answers a made-up user name exactly as a real one, past the lockout too', async () => {
        const home = main.newWshHome();
        const wrong = newPassword();
        const answers = [];
        for (let i = 0; i < 4; i++) answers.push(errorLines(await login(home, 'no-such-user-x', wrong)).join('\n'));
        assert.match(answers[0]!, SIGNIN_DENIED);
        assert.deepEqual(new Set(answers).size, 1, 'one answer, before and after max_attempts');
      });

      it(
        'after 3 failed logins refuses the user from that address only: ' + 'not the account, and not until a reset',
        async () => {
          const password = await addUser('ivan', 'access', 'ivan');
          const ivan = main.client(await issueTLSIdentity('ivan'));
          await ivan.listResources({ kind: 'node' });

          const home = main.newWshHome();
          const wrong = newPassword();
          for (let i = 0; i < 3; i++) fails(await login(home, 'ivan', wrong), SIGNIN_DENIED);
          fails(await login(home, 'ivan', password), SIGNIN_DENIED);
          const locked = (await loginEvents('ivan')).find((e) => e.event === 'user.login_locked');
          assert.equal(locked?.code, 'WU1006W');
          assert.equal(locked?.source, '127.0.0.1');
          // Failed sign-ins lock the address they come from, never the account: anyone can fail a sign-in.
          assert.doesNotMatch(ok(await main.wctl(['users', 'ls'])), /^ivan .*\d{4}-\d\d-\d\dT/m);
          await ivan.listResources({ kind: 'node' });

          const reset = ok(await main.wctl(['users', 'reset', 'ivan']));
          assert.match(reset, /Password of "ivan" has been reset\./);
          const otp = /One-time password: (\S+)/.exec(reset)?.[1];
          assert.ok(otp);
          secrets.push(otp);
          assert.doesNotMatch(ok(await main.wctl(['users', 'ls'])), /^ivan .*\d{4}-\d\d-\d\dT/m);
          fails(await login(home, 'ivan', password), SIGNIN_DENIED);
          ok(await login(home, 'ivan', otp));
          await ivan.listResources({ kind: 'node' });
        },
      );
    });

    describe('wctl events', { concurrency: 1 }, () => {
      it('searches the audit log by type and user, as text or JSON lines, and only for roles allowed to', async () => {
        const password = await addUser('evie', 'access', 'evie');
        const home = main.newWshHome();
        fails(await login(home, 'evie', 'not her password'), SIGNIN_DENIED);
        ok(await login(home, 'evie', password));
        const lines = ok(await main.wctl(['events', '--type', 'user.login', '--user', 'evie', '--format', 'json']))
          .trim()
          .split('\n');
        const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        assert.deepEqual(
          events.map((e) => [e.event, e.success]),
          [
            ['user.login', true],
            ['user.login', false],
          ],
          'newest first',
        );
        assert.ok(events.every((e) => e.user === 'evie' && typeof e.uid === 'string' && e.cluster === 'e2e'));
        const text = ok(await main.wctl(['events', '--type', 'user.login', '--user', 'evie', '--from', '1h']));
        assert.match(text, /^Time +Event +Code +User +Details$/m);
        assert.match(text, /user\.login +WU1000W +evie +success=false method=password/);
        assert.match(ok(await main.wctl(['events', '--user', 'evie', '--to', '2000-01-01T00:00:00Z'])), /^no events$/m);
        fails(await main.wctl(['events', '--limit', '0']), /--limit must be a whole number/);
        fails(await main.wctl(['events', '--from', 'yesterday']), /invalid time "yesterday"/);
        // A user without the auditor's rule may not read the log.
        await assert.rejects(
          main.client(await issueTLSIdentity('evie')).searchEvents({}),
          (e: Error) => e instanceof AccessDenied && /no role allows list on event/.test(e.message),
        );
      });
    });

    describe('the Auth API refuses what a caller may not do', { concurrency: 1 }, () => {
      let bob: ReturnType<Cluster['client']>;
      before(async () => {
        const prefix = join(work, 'bob-tls');
        ok(await main.wctl(['auth', 'sign', '--user', 'bob', '--format', 'tls', '--out', prefix]));
        bob = main.client(readTLSIdentity(prefix));
      });
      const denied = (pattern: RegExp) => (err: Error) =>
        err instanceof AccessDenied && err.code === 'ERR_ACCESS_DENIED' && pattern.test(err.message);

      it('lets an access-only user list nodes but not create or list users', async () => {
        await bob.listResources({ kind: 'node' });
        await assert.rejects(
          bob.createUser({ name: 'mallory', roles: ['editor'], logins: [] }),
          denied(/no role allows create on user/),
        );
        await assert.rejects(bob.listResources({ kind: 'user' }), denied(/no role allows list on user/));
        await assert.rejects(bob.searchEvents({}), denied(/no role allows list on event/));
        await assert.rejects(main.adminClient().getResource({ kind: 'user', name: 'mallory' }), /not found/);
      });

      it(
        'keeps password login for proxies: ' + 'a user certificate may not call it, even with the right password',
        async () => {
          await assert.rejects(
            bob.authenticateUser({ user: 'alice', password: alicePassword }),
            denied(/^access denied$/),
          );
        },
      );

      it('answers only ping to a caller without a certificate', async () => {
        const anonymous = main.client(undefined);
        assert.equal((await anonymous.ping({})).clusterName, 'e2e');
        await assert.rejects(anonymous.listResources({ kind: 'role' }), denied(/log in first/));
        await assert.rejects(anonymous.exportCAs({ type: 'user' }), denied(/log in first/));
        await assert.rejects(
          anonymous.authenticateUser({ user: 'alice', password: alicePassword }),
          denied(/log in first/),
        );
      });

      it('refuses a certificate signed by another CA, even one naming this cluster', async () => {
        const now = new Date();
        const ca = await createTLSCA({ clusterName: 'e2e', now });
        const key = await generateTLSKey();
        const certPem = await issueTLSCert({
          caCertPem: ca.certPem,
          caKeyPem: ca.keyPem,
          publicKeyPem: key.publicKeyPem,
          identity: { username: 'alice', roles: ['editor'], logins: [], cluster: 'e2e', expires: '', kind: 'user' },
          notAfter: new Date(now.getTime() + 3_600_000),
          now,
          usage: 'client',
        });
        const forged = main.client({ keyPem: key.privateKeyPem, certPem, caPems: main.adminIdentity().caPems });
        await assert.rejects(
          forged.listResources({ kind: 'role' }),
          denied(/not from this cluster's certificate authority/),
        );
      });

      it('refuses an expired certificate, in the API and in the CLIs', async () => {
        const prefix = join(work, 'bob-1s');
        const id = join(work, 'bob-1s.id');
        const started = Date.now();
        ok(await main.wctl(['auth', 'sign', '--user', 'bob', '--format', 'tls', '--ttl', '1s', '--out', prefix]));
        ok(await main.wctl(['auth', 'sign', '--user', 'bob', '--ttl', '1s', '--out', id]));
        const notAfter = new Date(new X509Certificate(readFileSync(`${prefix}.crt`)).validTo);
        assert.ok(
          notAfter.getTime() >= started - 1_000 && notAfter.getTime() <= Date.now() + 1_000,
          `a 1s certificate ends ${notAfter.toISOString()}`,
        );
        const idNotAfter = new Date(new X509Certificate(readIdentityFile(id).tlsCert).validTo);
        await waitForClockPast(new Date(Math.max(notAfter.getTime(), idNotAfter.getTime())));
        await assert.rejects(
          main.client(readTLSIdentity(prefix)).listResources({ kind: 'node' }),
          denied(/your certificate has expired/),
        );
        fails(await main.wctlAs(id, ['get', 'nodes']), /your certificate has expired: log in again/);
        assert.match(ok(await main.wsh(main.newWshHome(), ['-i', id, 'status'])), /\[EXPIRED\]/);
      });

      it('refuses the certificate of a user deleted since it was issued', async () => {
        await addUser('erin', 'access', 'erin');
        const erin = main.client(await issueTLSIdentity('erin'));
        await erin.listResources({ kind: 'node' });
        ok(await main.wctl(['users', 'rm', 'erin']));
        await assert.rejects(erin.listResources({ kind: 'node' }), denied(/^access denied$/));
      });

      it('refuses a certificate whose role was deleted since it was issued', async () => {
        await createRole(
          'kind: role\nversion: v1\nmetadata: {name: node-reader}\nspec:\n  allow:\n    rules: [{resources: ' +
            '[node], verbs: [list]}]\n',
        );
        await addUser('frank', 'node-reader', 'frank');
        const frank = main.client(await issueTLSIdentity('frank'));
        await frank.listResources({ kind: 'node' });
        fails(await main.wctl(['rm', 'role/node-reader']), /role "node-reader" is still assigned to frank/);
        // Take the role away from frank (his certificate still names it), then delete it.
        const admin = main.adminClient();
        const user = JSON.parse((await admin.getResource({ kind: 'user', name: 'frank' })).json);
        user.spec.roles = ['access'];
        await admin.upsertResource({ resource: { json: JSON.stringify(user) }, overwrite: true });
        ok(await main.wctl(['rm', 'role/node-reader']));
        await assert.rejects(frank.listResources({ kind: 'node' }), denied(/role "node-reader" no longer exists/));
      });

      it("applies the same checks through the proxy's auth pass-through", async () => {
        const viaProxy = main.client(readTLSIdentity(join(work, 'bob-tls')), main.proxyAddr);
        await viaProxy.listResources({ kind: 'node' });
        await assert.rejects(viaProxy.listResources({ kind: 'user' }), denied(/no role allows list on user/));
        await assert.rejects(
          main.client(undefined, main.proxyAddr).listResources({ kind: 'role' }),
          denied(/log in first/),
        );
      });

      it(
        'lets a user renew their own certificate, ' + 'no longer than it has left, but not mint one for someone else',
        async () => {
          const keys = generateClientKeys('bob');
          const req = { sshPublicKey: keys.sshPublicKey, tlsPublicKey: keys.tlsPublicKey, ttlSeconds: 10 * 3600 };
          await assert.rejects(bob.generateUserCerts({ ...req, user: 'alice' }), denied(/^access denied$/));
          const renewed = await bob.generateUserCerts({ ...req, user: 'bob' });
          assert.ok(
            renewed.ttlSeconds <= 3600,
            `renewed for ${renewed.ttlSeconds}s, past the 1h of the calling certificate`,
          );
        },
      );
    });

    describe('the proxy port', { concurrency: 1 }, () => {
      it('redirects plain HTTP to HTTPS with a 308', async () => {
        const [host, port] = main.proxyAddr.split(':');
        const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
          const req = http.get(
            { host, port: Number(port), path: '/webapi/ping?x=1', agent: false, timeout: 5_000 },
            resolve,
          );
          req.on('timeout', () => req.destroy(new Error('no answer to plain HTTP in 5s')));
          req.on('error', reject);
        });
        res.resume();
        assert.equal(res.statusCode, 308);
        assert.equal(res.headers.location, `https://${main.proxyAddr}/webapi/ping?x=1`);
      });

      it('closes connections that speak no known protocol, promptly', async () => {
        const text = await sendAndAwaitClose(main.proxyAddr, Buffer.from('hello, is anybody there?\r\n'), 3_000);
        assert.ok(text < 2_000, `closed after ${text}ms`);
        // A TLS handshake record (0x16) whose ClientHello is cut short inside the record.
        const badTLS = Buffer.from('160301000801000004' + '01020304', 'hex');
        assert.ok((await sendAndAwaitClose(main.proxyAddr, badTLS, 3_000)) < 2_000);
      });

      it('keeps serving HTTPS while silent and garbage connections come and go', async () => {
        const [host, port] = main.proxyAddr.split(':');
        const silent = Array.from({ length: 5 }, () =>
          net.connect({ host, port: Number(port) }).on('error', () => undefined),
        );
        try {
          // A fixed first byte: random bytes could look like the start of a TLS record and wait for more.
          const garbage = () => Buffer.concat([Buffer.from('garbage:'), randomBytes(56)]);
          await Promise.all(Array.from({ length: 5 }, () => sendAndAwaitClose(main.proxyAddr, garbage(), 3_000)));
          const ping = await httpsGet(main.proxyAddr, '/webapi/ping', main.adminIdentity().caPems);
          assert.equal(ping.status, 200);
          assert.equal(JSON.parse(ping.body).cluster_name, 'e2e');
          const missing = await httpsGet(main.proxyAddr, '/webapi/nope', main.adminIdentity().caPems);
          assert.equal(missing.status, 404);
          assert.equal(JSON.parse(missing.body).error.code, 'ERR_NOT_FOUND');
        } finally {
          for (const s of silent) s.destroy();
        }
      });
    });
  });

  describe('its log', () => {
    it('is written, and never holds a password, one-time password or join token', () => {
      assert.match(main.log, /"msg":"proxy listening"/);
      assert.ok(secrets.length >= 10, `checked ${secrets.length} secrets`);
      for (const secret of secrets) assert.ok(!main.log.includes(secret), `a secret is in the ward log`);
      assert.doesNotMatch(main.log, /PRIVATE KEY/);
    });
  });
});
