// End to end: second factors in the web UI, in Debian's Chromium (playwright-core) against a real
// `ward start`. Under second_factor: otp, an invite link registers an authenticator app from the QR
// code's secret (the test computes the codes, as the app would), shows the recovery codes once, and the
// sign-in takes a fresh code and refuses a reused one. Under `on`, a virtual authenticator (Chrome
// DevTools protocol, WebAuthn domain) registers a security key at sign-up, signs in with it (a replayed
// answer is refused), and proves itself on the Account page to add an authenticator app. Step one of a
// key sign-in, called over HTTPS from other addresses, answers every password and name alike, and its
// guesses still lock the guesser's address. Under `webauthn`, wsh login says it cannot help. Screenshots go
// to test-output/screenshots/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generate } from 'otplib';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { openBrowser } from './fixtures/browser.ts';
import { REPO, cleanup, startCluster, type Cluster, type RunResult } from './harness.ts';

const SHOTS = join(REPO, 'test-output', 'screenshots');
const PASSWORD = 'correct horse battery';

function ok(r: RunResult): string {
  assert.equal(r.code, 0, `expected success, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

function config(secondFactor: string): string {
  return [
    'version: v1',
    'ward: {log: {severity: info}}',
    `auth_service: {cluster_name: webmfa, listen_addr: '127.0.0.1:0', second_factor: ${secondFactor}}`,
    "proxy_service: {listen_addr: '127.0.0.1:0'}",
    'ssh_service: {enabled: false}',
    '',
  ].join('\n');
}

let cluster: Cluster;
let context: BrowserContext;
let page: Page;
let cdp: CDPSession;
let authenticatorId = '';

/** Security keys are bound to a host name (the RP ID): the browser reaches the proxy as localhost, not 127.0.0.1. */
const base = () => `https://localhost:${cluster.proxyAddr.split(':').at(-1)}`;

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

async function invite(user: string): Promise<string> {
  const out = ok(await cluster.wctl(['users', 'add', user, '--roles', 'access', '--logins', 'root']));
  const token = /\/web\/invite\/([0-9a-f]{64})/.exec(out)?.[1];
  assert.ok(token, out);
  return `${base()}/web/invite/${token}`;
}

async function signOut(): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('User name').waitFor();
}

async function events(types: string): Promise<Array<Record<string, unknown>>> {
  return ok(await cluster.wctl(['events', '--format', 'json', '--type', types, '--limit', '200']))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function reconfigure(secondFactor: string): Promise<void> {
  writeFileSync(cluster.configPath, config(secondFactor));
  await cluster.restart();
}

const DENIED =
  'access denied: invalid user name, password or second-factor code, or too many failed sign-ins from this address' +
  ' (a user with no second factor registered finishes sign-up from the invite link)';

interface Answer {
  status: number;
  text: string;
  body: {
    webauthn_options?: { challenge: string; allowCredentials: Array<{ id: string }> } | null;
    totp?: boolean;
    error?: { message: string };
  };
}

/** A web API call from `from` (another address than the browser's), over HTTPS as any client makes it. */
function post(from: string, path: string, body: unknown): Promise<Answer> {
  const port = Number(cluster.proxyAddr.split(':').at(-1));
  const agent = new https.Agent({ ca: cluster.adminIdentity().caPems, localAddress: from });
  const headers = { 'content-type': 'application/json' };
  const options = { host: '127.0.0.1', port, method: 'POST', path, agent, servername: 'localhost', headers };
  return new Promise((resolve, reject) => {
    const req = https.request({ ...options, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => (text += s));
      res.on('end', () => {
        agent.destroy();
        resolve({ status: res.statusCode ?? 0, text, body: JSON.parse(text) as Answer['body'] });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${path} timed out`)));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** The JSON's structure, values replaced by their types and lists by their elements' shapes. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return [...new Set(value.map((v) => JSON.stringify(shapeOf(v))))];
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shapeOf(v)]));
  }
  return typeof value;
}

/**
 * The virtual key's answer to a challenge, made by the page (navigator.credentials.get, as the sign-in page
 * does), as JSON. Plain JavaScript in a string: tsx's compiled functions call a helper the page does not have.
 */
function signInPage(options: unknown): Promise<string> {
  return page.evaluate(`(async (o) => {
    const bytes = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const text = (b) => btoa(String.fromCharCode(...new Uint8Array(b)))
      .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
    const credential = await navigator.credentials.get({
      publicKey: {
        challenge: bytes(o.challenge),
        rpId: o.rpId,
        allowCredentials: o.allowCredentials.map((c) => ({ type: 'public-key', id: bytes(c.id) })),
        userVerification: 'discouraged',
      },
    });
    const r = credential.response;
    return JSON.stringify({
      id: credential.id,
      rawId: text(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: text(r.clientDataJSON),
        authenticatorData: text(r.authenticatorData),
        signature: text(r.signature),
      },
      clientExtensionResults: {},
    });
  })(${JSON.stringify(options)})`);
}

let cspErrors: string[] = [];

before(async () => {
  assert.ok(existsSync(join(REPO, 'dist/web/index.html')), 'the web UI is built (npm run build)');
  mkdirSync(SHOTS, { recursive: true });
  cluster = await startCluster({ config: config('otp') });
  ({ context, page, consoleErrors: cspErrors } = await openBrowser({ width: 1280, height: 860 }));
  page.setDefaultTimeout(15_000);
});

after(async () => {
  await context?.close();
  await cleanup();
});

describe('second factors in the web UI', { concurrency: 1 }, () => {
  let secret = '';
  it(
    'signs up from an invite link with an authenticator app (QR code) and shows the recovery codes once ' +
      '(second_factor: otp)',
    async () => {
      await page.goto(await invite('tess'));
      await page.getByText('Choose a password for').waitFor();
      await page.getByLabel('New password').fill(PASSWORD);
      await page.getByLabel('Confirm password').fill(PASSWORD);
      const qr = page.getByTestId('totp-qr');
      await qr.waitFor();
      assert.match(
        (await qr.getAttribute('src')) ?? '',
        /^data:image\/png;base64,/,
        'the QR code is an image drawn by the proxy',
      );
      secret = (await page.getByTestId('totp-secret').innerText()).trim();
      assert.match(secret, /^[A-Z2-7]{16,}$/);
      const uri = new URL((await qr.getAttribute('data-uri')) ?? '');
      assert.equal(uri.protocol, 'otpauth:');
      assert.equal(uri.searchParams.get('secret'), secret, 'the QR code holds the secret shown');
      await page.getByLabel('Code from the app').fill('000000');
      await page.getByLabel('Device name').fill('phone');
      await shot('20-invite-totp');
      // A wrong code does not cost the link.
      await page.getByRole('button', { name: /add the app and sign in/ }).click();
      await page
        .getByRole('alert')
        .getByText(/does not match/)
        .waitFor();
      await page.getByLabel('Code from the app').fill(await generate({ secret }));
      await page.getByRole('button', { name: /add the app and sign in/ }).click();
      const codes = (await page.getByTestId('recovery-codes').innerText())
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
      assert.equal(codes.length, 3);
      for (const c of codes) assert.match(c, /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$/);
      await shot('21-invite-recovery-codes');
      await page.getByRole('button', { name: /continue/ }).click();
      assert.equal(await page.locator('.who').innerText(), 'tess');
      const added = (await events('mfa.add')).find((e) => e.user === 'tess');
      assert.equal(added?.type, 'totp');
    },
  );

  it('signs in with a fresh code from the app, and refuses the same code again', async () => {
    await signOut();
    await page.getByLabel('Authenticator code').waitFor();
    // This time step's code was spent at sign-up: the app's next one (one step of drift is allowed).
    const next = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
    await page.getByLabel('User name').fill('tess');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Authenticator code').fill(next);
    await shot('22-sign-in-otp');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.locator('.who').getByText('tess').waitFor();
    await signOut();
    await page.getByLabel('User name').fill('tess');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Authenticator code').fill(next);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page
      .getByRole('alert')
      .getByText(/invalid user name, password or second-factor code/)
      .waitFor();
    await shot('23-sign-in-otp-reused');
    const failures = (await events('user.login')).filter((e) => e.user === 'tess' && e.success === false);
    assert.ok(
      failures.some((e) => /bad second factor/.test(String(e.error))),
      'the reused code is audited',
    );
  });

  let keyUser = '';
  it(
    'signs up with a security key (virtual authenticator) and signs in with it; a replayed answer is ' +
      'refused (second_factor: on)',
    async () => {
      await reconfigure('on');
      cdp = await context.newCDPSession(page);
      await cdp.send('WebAuthn.enable');
      ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: {
          protocol: 'ctap2',
          transport: 'usb',
          hasResidentKey: false,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      }));
      keyUser = 'kim';
      await page.goto(await invite(keyUser));
      await page.getByLabel('New password').fill(PASSWORD);
      await page.getByLabel('Confirm password').fill(PASSWORD);
      await page.getByLabel('Security key').check();
      await page.getByLabel('Device name').fill('yubikey');
      await shot('24-invite-security-key');
      await page.getByRole('button', { name: /register the key and sign in/ }).click();
      await page.getByTestId('recovery-codes').waitFor();
      await page.getByRole('button', { name: /continue/ }).click();
      assert.equal(await page.locator('.who').innerText(), keyUser);
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.equal(credentials.length, 1);
      assert.equal(credentials[0]!.rpId, 'localhost');

      await signOut();
      await page.getByLabel('User name').fill(keyUser);
      await page.getByLabel('Password').fill(PASSWORD);
      await shot('25-sign-in-on');
      const [signInRequest] = await Promise.all([
        page.waitForRequest((r) => r.url().endsWith('/webapi/sessions/web') && r.method() === 'POST'),
        page.getByRole('button', { name: 'Sign in with a security key' }).click(),
      ]);
      await page.locator('.who').getByText(keyUser).waitFor();
      const after = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials[0]!;
      assert.ok(after.signCount > credentials[0]!.signCount, 'the key signed (its counter moved)');

      // The same answer again, from the same page: its challenge was used.
      const body = signInRequest.postData()!;
      assert.match(JSON.parse(body).second_factor, /^\{.*"clientDataJSON"/);
      const replay = await page.evaluate(async (b) => {
        const r = await fetch('/webapi/sessions/web', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: b,
        });
        return { status: r.status, text: await r.text() };
      }, body);
      assert.equal(replay.status, 403, replay.text);
      assert.match(replay.text, /invalid user name, password or second-factor code/);
      const reasons = (await events('user.login'))
        .filter((e) => e.user === keyUser)
        .map((e) => `${String(e.success)} ${String(e.method)} ${String(e.error ?? '')}`);
      assert.ok(
        reasons.some((r) => r === 'true password+webauthn '),
        reasons.join(' | '),
      );
      assert.ok(
        reasons.some((r) => /^false .*challenge has expired or was already used/.test(r)),
        reasons.join(' | '),
      );
    },
  );

  it(
    'answers step one of a key sign-in alike for every password and name; ' +
      'only a right password and the key finish',
    async () => {
      const prober = '127.0.0.3';
      const right = await post(prober, '/webapi/mfa/login/begin', { user: keyUser, password: PASSWORD });
      assert.equal(right.status, 200, right.text);
      const wrong = await post(prober, '/webapi/mfa/login/begin', { user: keyUser, password: 'not the password' });
      assert.equal(wrong.status, 200, `a wrong password gets a challenge too: ${wrong.text}`);
      assert.deepEqual(shapeOf(wrong.body), shapeOf(right.body));
      const ids = (r: Answer) => r.body.webauthn_options!.allowCredentials.map((c) => c.id);
      assert.deepEqual(ids(wrong), ids(right), 'the same keys, whatever the password');
      assert.equal(wrong.body.totp, right.body.totp);
      assert.notEqual(wrong.body.webauthn_options!.challenge, right.body.webauthn_options!.challenge);
      // A made-up name: a decoy of the same shape, the same one each time.
      const decoy = await post(prober, '/webapi/mfa/login/begin', { user: 'nobody-at-all', password: PASSWORD });
      const decoyAgain = await post(prober, '/webapi/mfa/login/begin', { user: 'nobody-at-all', password: 'x' });
      assert.equal(decoy.status, 200, decoy.text);
      assert.deepEqual(shapeOf(decoy.body), shapeOf(right.body));
      assert.deepEqual(ids(decoyAgain), ids(decoy));
      assert.notDeepEqual(ids(decoy), ids(right));

      // The key signs the wrong password's challenge (it names the real key), but no finish takes it.
      const signed = await signInPage(wrong.body.webauthn_options!);
      for (const [user, password] of [
        [keyUser, 'not the password'],
        [keyUser, PASSWORD],
        ['nobody-at-all', PASSWORD],
      ]) {
        const finish = await post(prober, '/webapi/sessions/web', { user, password, second_factor: signed });
        assert.equal(finish.status, 403, finish.text);
        assert.equal(finish.body.error?.message, DENIED);
      }
      // The right password and the key still sign in.
      const again = await post(prober, '/webapi/mfa/login/begin', { user: keyUser, password: PASSWORD });
      const assertion = await signInPage(again.body.webauthn_options!);
      const finish = { user: keyUser, password: PASSWORD, second_factor: assertion };
      const signedIn = await post(prober, '/webapi/sessions/web', finish);
      assert.equal(signedIn.status, 200, signedIn.text);
    },
  );

  it("counts every password at step one: max_attempts lock the attacker's address, the key cannot help", async () => {
    const attacker = '127.0.0.2';
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(await post(attacker, '/webapi/mfa/login/begin', { user: keyUser, password: `guess ${i}` }));
    }
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200],
    );
    const locked = (await events('user.login_locked')).filter((e) => e.user === keyUser);
    assert.deepEqual(
      locked.map((e) => e.remote_addr),
      [attacker],
      'locked after the fifth guess at step one',
    );
    // Now even the right password and the real key are refused from there, with the one answer.
    const begin = await post(attacker, '/webapi/mfa/login/begin', { user: keyUser, password: PASSWORD });
    assert.equal(begin.status, 200, begin.text);
    const assertion = await signInPage(begin.body.webauthn_options!);
    const refused = { user: keyUser, password: PASSWORD, second_factor: assertion };
    const finish = await post(attacker, '/webapi/sessions/web', refused);
    assert.equal(finish.status, 403, finish.text);
    assert.equal(finish.body.error?.message, DENIED);
    const fromAttacker = (await events('user.login')).filter((e) => e.user === keyUser && e.remote_addr === attacker);
    const errors = fromAttacker.map((e) => String(e.error)).sort();
    const lockedOut = 'too many failed sign-ins from this address';
    assert.deepEqual(errors, [...Array(5).fill('bad password'), lockedOut, lockedOut], 'each password audited');
  });

  it(
    'adds an authenticator app on the Account page (proved by the key), lists and removes devices, and ' +
      'keeps the last one',
    async () => {
      await page.getByRole('link', { name: 'Account' }).click();
      await page.locator('tr[data-device="yubikey"]').waitFor();
      await page.getByRole('button', { name: 'Add authenticator app' }).click();
      const appSecret = (await page.getByTestId('totp-secret').innerText()).trim();
      await page.getByLabel('Code from the app').fill(await generate({ secret: appSecret }));
      await page.getByLabel('Device name').fill('tablet');
      await shot('26-account-add-app');
      // The existing-device field is left empty: the virtual key is touched as proof.
      await page.getByRole('button', { name: 'Add app' }).click();
      await page.locator('tr[data-device="tablet"]').waitFor();
      await shot('27-account-devices');
      const added = (await events('mfa.add')).filter((e) => e.user === keyUser).map((e) => e.type);
      assert.deepEqual(added.sort(), ['totp', 'webauthn']);

      await page.locator('tr[data-device="tablet"]').getByRole('button', { name: 'Remove' }).click();
      await page.getByText('Removed tablet.').waitFor();
      // The message comes first, the reloaded list a moment later: wait for the row to go.
      await page.locator('tr[data-device="tablet"]').waitFor({ state: 'detached', timeout: 10_000 });
      await page.locator('tr[data-device="yubikey"]').getByRole('button', { name: 'Remove' }).click();
      await page
        .getByRole('alert')
        .getByText(/last second-factor device/)
        .waitFor();
      await shot('28-account-last-device');
      const deleted = (await events('mfa.delete')).filter((e) => e.name === keyUser);
      assert.deepEqual(
        deleted.map((e) => e.type),
        ['totp'],
      );

      // The same key cannot be registered twice.
      await page.getByRole('button', { name: 'Add security key' }).click();
      await page.getByRole('button', { name: 'Register key' }).click();
      await page
        .getByRole('alert')
        .getByText(/already registered/)
        .waitFor();
    },
  );

  it('never shows a TOTP secret or a key in the API, the resources or the audit log', async () => {
    const everything = [
      ok(await cluster.wctl(['get', 'users', '--format', 'json'])),
      ok(await cluster.wctl(['events', '--format', 'json', '--limit', '1000'])),
    ].join('\n');
    assert.ok(!everything.includes(secret));
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.ok(!everything.includes(credentials[0]!.credentialId.replace(/=+$/, '')));
  });

  it(
    'has wsh login refuse at once, in one line, ' +
      'when the cluster takes security keys only (second_factor: webauthn)',
    async () => {
      await reconfigure('webauthn');
      const r = await cluster.wsh(
        cluster.newWshHome(),
        ['login', '--proxy', cluster.proxyAddr, '--user', keyUser, '--password-stdin', '--ca-pin', cluster.caPin],
        { stdin: `${PASSWORD}\n` },
      );
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /security keys only .* wsh login takes TOTP codes only: sign in with the web UI/);
      // The web sign-in still works with the key; the TOTP user has no device this mode takes.
      await page.goto(`${base()}/web/login`);
      await signOut().catch(() => undefined);
      await page.getByLabel('User name').fill(keyUser);
      await page.getByLabel('Password').fill(PASSWORD);
      assert.equal(await page.getByLabel('Authenticator code').count(), 0, 'no code field under webauthn');
      await page.getByRole('button', { name: 'Sign in with a security key' }).click();
      await page.locator('.who').getByText(keyUser).waitFor();
    },
  );

  it('ran every page under the CSP without a violation', () => {
    assert.deepEqual(
      cspErrors.filter((e) => /Content Security Policy/i.test(e)),
      [],
    );
  });
});
