// End to end: TOTP second factor. A user registers an authenticator app with `wsh mfa add` (the test
// plays the app: it computes codes from the secret wsh printed, as RFC 6238 says), then, with the
// cluster's second_factor set to otp, `wsh login` needs a fresh code: a reused, stale or wrong code is
// refused and audited, and a recovery code works once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generate } from 'otplib';
import { generateClientKeys } from '../src/crypto/clientkeys.ts';
import { BIN, cleanup, startCluster, type Cluster, type RunResult } from './harness.ts';

function ok(r: RunResult): string {
  assert.equal(r.code, 0, `expected success, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

const PASSWORD = 'correct horse battery staple';
let main: Cluster;
let home: string;
let secret = '';
let recovery: string[] = [];

/** What an authenticator app shows `offsetSeconds` from now. */
const code = (offsetSeconds = 0) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + offsetSeconds });

const ATTACKER = '127.0.0.2';
const DENIED =
  'access denied: invalid user name, password or second-factor code, or too many failed sign-ins from this address' +
  ' (a user with no second factor registered finishes sign-up from the invite link)';

/** wsh login's request (POST /webapi/login/certs) with alice's password, from a socket bound to `from`. */
function signIn(secondFactor: string, from: string): Promise<{ status: number; message: string }> {
  const [host, port] = main.proxyAddr.split(':');
  const keys = generateClientKeys('attacker');
  const pub = { ssh_public_key: keys.sshPublicKey, tls_public_key: keys.tlsPublicKey };
  const body = JSON.stringify({ user: 'alice', password: PASSWORD, second_factor: secondFactor, ...pub });
  const headers = { 'content-type': 'application/json' };
  const ca = main.adminIdentity().caPems;
  const path = '/webapi/login/certs';
  const options = { host, port: Number(port), method: 'POST', path, localAddress: from, ca, headers };
  return new Promise((resolve, reject) => {
    const req = https.request({ ...options, servername: 'localhost' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => (text += s));
      const message = () => (JSON.parse(text) as { error?: { message: string } }).error?.message ?? '';
      res.on('end', () => resolve({ status: res.statusCode ?? 0, message: message() }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('sign-in timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function login(stdin: string, extra: string[] = []): Promise<RunResult> {
  return main.wsh(
    home,
    ['login', '--proxy', main.proxyAddr, '--user', 'alice', '--password-stdin', '--ca-pin', main.caPin, ...extra],
    { stdin },
  );
}

function config(secondFactor: string): string {
  return [
    'version: v1',
    'ward: {log: {severity: info}}',
    `auth_service: {cluster_name: mfa, listen_addr: '127.0.0.1:0', second_factor: ${secondFactor}}`,
    // The lockout is what these tests attack, not the proxy's rate limit (test/security/bruteforce.test.ts).
    "proxy_service: {listen_addr: '127.0.0.1:0', rate_limits: {sign_in: {burst: 100, per_minute: 600}}}",
    'ssh_service: {enabled: false}',
    '',
  ].join('\n');
}

before(async () => {
  main = await startCluster({ config: config('off') });
  ok(
    await main.wctl(['users', 'add', 'alice', '--roles', 'access', '--logins', 'root', '--password-stdin'], {
      stdin: `${PASSWORD}\n`,
    }),
  );
  home = main.newWshHome();
  ok(await login(`${PASSWORD}\n`));
});

after(cleanup);

describe('TOTP second factor', () => {
  it('registers an authenticator app with wsh mfa add and gives recovery codes once', async () => {
    // Two steps with a code from the "app" in between: the test reads the secret wsh printed, as a
    // person scans the QR code, and answers on stdin.
    const r = await main.wsh(home, ['mfa', 'add', '--name', 'phone', '--otp-stdin'], { stdin: '000000\n' });
    assert.equal(r.code, 1, 'a wrong code does not register the device');
    assert.match(r.stderr, /does not match/);
    const printed = /Secret: ([A-Z2-7]+)/.exec(r.stdout)?.[1];
    assert.ok(printed, r.stdout);
    assert.match(r.stdout, /otpauth:\/\/totp\/.*secret=/);
    assert.match(r.stdout, /[▀▄█]/, 'a QR code drawn in the terminal');
    // Register for real, with the code the app shows for the new secret.
    const out = await addDevice('phone');
    assert.match(out, /Added TOTP device "phone"/);
    recovery = [...out.matchAll(/^ {2}([0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8})$/gm)].map((m) => m[1]!);
    assert.equal(recovery.length, 3);
    assert.match(ok(await main.wsh(home, ['mfa', 'ls'])), /phone\s+totp/);
  });

  it('never shows the secret again: not in the API, not in resources, not in the audit log', async () => {
    const everything = [
      ok(await main.wctl(['get', 'users', '--format', 'json'])),
      ok(await main.wctl(['events', '--format', 'json', '--limit', '1000'])),
      ok(await main.wsh(home, ['mfa', 'ls', '--format', 'json'])),
    ].join('\n');
    assert.ok(!everything.includes(secret));
    assert.ok(recovery.every((c) => !everything.includes(c)));
  });

  it('needs a fresh code at login once the cluster asks for a second factor', async () => {
    writeFileSync(main.configPath, config('otp'));
    await main.restart();
    const without = await login(`${PASSWORD}\n`);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /second-factor code needed: run in a terminal or use --otp-stdin/);

    const fresh = await code(30); // the next step: this step's code was spent registering the device
    ok(await login(`${PASSWORD}\n${fresh}\n`, ['--otp-stdin']));
    const reused = await login(`${PASSWORD}\n${fresh}\n`, ['--otp-stdin']);
    assert.equal(reused.code, 1, 'a code works once');
    assert.match(reused.stderr, /invalid user name, password or second-factor code/);
    const stale = await login(`${PASSWORD}\n${await code(-120)}\n`, ['--otp-stdin']);
    assert.equal(stale.code, 1, 'a code from two minutes ago is refused');
    const wrongPassword = await login(`not the password\n${await code(30)}\n`, ['--otp-stdin']);
    assert.equal(wrongPassword.code, 1);
    assert.match(wrongPassword.stderr, /access denied: invalid user name/, 'a wrong password is refused as before');
  });

  it('refuses a user with no device registered, whatever code they send', async () => {
    ok(
      await main.wctl(['users', 'add', 'bob', '--roles', 'access', '--logins', 'root', '--password-stdin'], {
        stdin: `${PASSWORD}\n`,
      }),
    );
    const r = await main.wsh(
      main.newWshHome(),
      ['login', '--proxy', main.proxyAddr, '--user', 'bob', '--password-stdin', '--otp-stdin', '--ca-pin', main.caPin],
      {
        stdin: `${PASSWORD}\n123456\n`,
      },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invite link/);
  });

  it('takes a recovery code once instead of a TOTP code', async () => {
    ok(await login(`${PASSWORD}\n${recovery[0]}\n`, ['--otp-stdin']));
    const again = await login(`${PASSWORD}\n${recovery[0]}\n`, ['--otp-stdin']);
    assert.equal(again.code, 1);
  });

  it('audits every second-factor failure with its reason', async () => {
    const events = ok(
      await main.wctl([
        'events',
        '--format',
        'json',
        '--type',
        'user.login,mfa.add,mfa.recovery_code_used',
        '--user',
        'alice',
        '--limit',
        '100',
      ]),
    )
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const reasons = events.filter((e) => e.event === 'user.login' && e.success === false).map((e) => String(e.error));
    assert.ok(
      reasons.some((r) => /bad second factor/.test(r)),
      reasons.join('|'),
    );
    assert.ok(events.some((e) => e.event === 'mfa.add'));
    assert.ok(events.some((e) => e.event === 'mfa.recovery_code_used'));
    assert.ok(events.some((e) => e.event === 'user.login' && e.success === true && e.method === 'password+otp'));
  });

  it("counts a malformed second factor as a failure: 4 wrong codes and a '{', again and again, lock out", async () => {
    // The review's attack, with the password: a second factor that starts with "{" goes to the security key
    // path, fails to parse, and used to reset the failure count, so codes could be guessed without end.
    writeFileSync(main.configPath, config('on'));
    await main.restart();
    ok(await login(`${PASSWORD}\n${recovery[2]}\n`, ['--otp-stdin'])); // a normal sign-in first: no failures counted
    const answers: Array<{ status: number; message: string }> = [];
    for (let round = 0; round < 3; round++) {
      for (const guess of ['000001', '000002', '000003', '000004', '{']) answers.push(await signIn(guess, ATTACKER));
    }
    const distinct = [...new Set(answers.map((a) => `${a.status} ${a.message}`))];
    assert.deepEqual(distinct, [`403 ${DENIED}`], 'one answer for every failure');
    // Locked from the attacker's address: even a valid second factor is refused there (and is not spent)...
    assert.deepEqual(await signIn(recovery[1]!, ATTACKER), { status: 403, message: DENIED });
    // ...while the user signs in from their own address with that same code.
    ok(await login(`${PASSWORD}\n${recovery[1]}\n`, ['--otp-stdin']));
    const query = ['--type', 'user.login,user.login_locked', '--user', 'alice', '--limit', '1000'];
    const events = ok(await main.wctl(['events', '--format', 'json', ...query]))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const failed = events.filter((e) => e.event === 'user.login' && e.success === false);
    const fromAttacker = failed.filter((e) => String(e.remote_addr).endsWith(ATTACKER));
    assert.equal(fromAttacker.length, 16, 'every failure is audited, the malformed ones too');
    const parsed = fromAttacker.filter((e) => /not valid JSON/.test(String(e.error)));
    assert.equal(parsed.length, 1, 'second factors were checked until the lock, no further');
    assert.equal(events.filter((e) => e.event === 'user.login_locked' && e.source === ATTACKER).length, 1);
  });

  it('adds a second device only with a code from the first', async () => {
    const r = await main.wsh(home, ['mfa', 'add', '--name', 'tablet', '--otp-stdin'], { stdin: '123456\n000000\n' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid or already used second-factor code|does not match/);
  });
});

/**
 * `wsh mfa add --otp-stdin`, answered as a person would: each run makes a new secret, so the code is
 * written to its stdin only once the secret has appeared on its stdout (wsh reads stdin after printing).
 */
function addDevice(name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(BIN, 'wsh'), ['mfa', 'add', '--name', name, '--otp-stdin'], {
      env: { ...process.env, WSH_HOME: home, HOME: main.root },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let answered = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /Secret: ([A-Z2-7]+)/.exec(out);
      if (m && !answered) {
        answered = true;
        secret = m[1]!;
        void code().then((c) => child.stdin.end(`${c}\n`));
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      if (status !== 0) reject(new Error(`wsh mfa add failed (${status}): ${err}`));
      else resolve(out);
    });
  });
}
