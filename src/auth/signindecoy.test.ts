// Step one of a security key sign-in at the auth server: one answer per name whatever the password, the
// source's lock or whether the name exists; decoys stable per name and shaped like real challenges; every
// password still counted. (End to end through the proxy with a real key: test/web-mfa.test.ts.)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, it } from 'node:test';
import pino from 'pino';
import { systemClock } from '../time/clock.ts';
import { sourceKey } from '../ratelimit/sourceaddr.ts';
import { SqliteBackend } from '../backend/sqlite.ts';
import { beginLoginChallenge } from './login.ts';
import { storeDevice } from './mfa.ts';
import { authServerParts } from '../../test/fixtures/authapi.ts';
import { AuthServer } from './server.ts';
import { LoginFailureStore } from '../services/loginfailures.ts';
import { SignInSecretStore } from '../services/signinsecret.ts';
import { decoyFactors } from './signindecoy.ts';

const PASSWORD = 'correct horse battery';
const ATTACKER = '127.0.0.2';
const MAX_ATTEMPTS = 3;
const KEY_ID = Buffer.alloc(64, 7).toString('base64url');
const backend = SqliteBackend.open({ path: ':memory:' });
let auth: AuthServer;

interface Options {
  rpId: string;
  challenge: string;
  allowCredentials: Array<{ id: string; type: string; transports: string[] }>;
  timeout: number;
  userVerification: string;
}

async function begin(user: string, password: string, clientAddr = '10.0.0.1') {
  const r = await beginLoginChallenge(auth, { user, password, clientAddr });
  return { options: JSON.parse(r.webauthnOptions) as Options, totp: r.totp };
}

/** The JSON's structure, values replaced by their types and lists by their elements' shapes: alike in every answer. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return [...new Set(value.map((v) => JSON.stringify(shapeOf(v))))];
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shapeOf(v)]));
  }
  return typeof value;
}

const storedChallenges = async (user: string) => (await backend.getRange(`/mfa/webauthn_challenges/${user}/`)).length;

before(async () => {
  auth = await AuthServer.create(
    authServerParts({
      clusterName: 'unit',
      backend,
      clock: systemClock,
      log: pino({ level: 'silent' }),
      lockout: { maxAttempts: MAX_ATTEMPTS, durationMs: 60_000 },
      secondFactor: 'on',
    }),
  );
  for (const name of ['kim', 'lee']) {
    await auth.createUser({ name, roles: ['access'], logins: [], password: PASSWORD, createdBy: 'test' });
  }
  const key = {
    id: randomUUID(),
    type: 'webauthn' as const,
    name: 'yubikey',
    added: new Date().toISOString(),
    credential_id: KEY_ID,
    public_key: 'AA',
    counter: 0,
    transports: ['usb'],
  };
  await storeDevice(auth, 'kim', key, { replace: false });
});

describe('decoy factors', () => {
  it('are the same for a name every time, and differ between names', () => {
    const a = decoyFactors(auth.signInSecret, 'nobody', 'on');
    assert.deepEqual(decoyFactors(auth.signInSecret, 'nobody', 'on'), a);
    const ids = (n: string) => decoyFactors(auth.signInSecret, n, 'on').credentials.map((c) => c.id);
    const all = Array.from({ length: 50 }, (_, i) => ids(`user${i}`)).flat();
    assert.equal(new Set(all).size, all.length, 'no two names share a credential id');
    const other = decoyFactors(Buffer.alloc(32, 1), 'nobody', 'on');
    assert.notDeepEqual(other.credentials, a.credentials, 'another cluster derives other decoys');
  });

  it('look like real keys: one or two, of the lengths real authenticators use, usually one', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 400; i++) {
      const { credentials } = decoyFactors(auth.signInSecret, `name${i}`, 'on');
      counts[credentials.length]!++;
      for (const c of credentials) {
        assert.ok([16, 32, 64].includes(Buffer.from(c.id, 'base64url').length), c.id);
        assert.ok(c.transports.length > 0);
      }
    }
    assert.equal(counts[0], 0);
    assert.ok(counts[1]! > 250 && counts[2]! > 50, `one key: ${counts[1]}, two: ${counts[2]}`);
  });

  it('say TOTP only as often as the mode makes it plausible', () => {
    const flags = (mode: 'on' | 'otp' | 'webauthn' | 'off') =>
      Array.from({ length: 200 }, (_, i) => decoyFactors(auth.signInSecret, `n${i}`, mode).totp);
    assert.ok(flags('otp').every(Boolean));
    assert.ok(flags('webauthn').every((t) => !t));
    const on = flags('on').filter(Boolean).length;
    assert.ok(on > 60 && on < 140, String(on));
  });
});

describe('step one of a security key sign-in', () => {
  it("answers a wrong password exactly as the right one, but stores only the right one's challenge", async () => {
    const right = await begin('kim', PASSWORD);
    assert.equal(await storedChallenges('kim'), 1);
    const wrong = await begin('kim', 'guess');
    assert.equal(await storedChallenges('kim'), 1, 'a wrong password leaves no challenge to finish');
    assert.deepEqual(shapeOf(wrong), shapeOf(right));
    assert.deepEqual(wrong.options.allowCredentials, right.options.allowCredentials);
    assert.deepEqual(
      right.options.allowCredentials.map((c) => c.id),
      [KEY_ID],
    );
    assert.equal(wrong.totp, right.totp);
    assert.notEqual(wrong.options.challenge, right.options.challenge);
  });

  it('answers a made-up name and a user without keys with stable decoys of the same shape', async () => {
    const real = await begin('kim', PASSWORD);
    for (const [user, password] of [
      ['nobody-here', PASSWORD],
      ['lee', PASSWORD],
      ['lee', 'guess'],
    ] as const) {
      const first = await begin(user, password);
      const again = await begin(user, 'other guess');
      assert.deepEqual(shapeOf(first.options.allowCredentials[0]), shapeOf(real.options.allowCredentials[0]));
      assert.deepEqual(Object.keys(first.options), Object.keys(real.options));
      assert.deepEqual(again.options.allowCredentials, first.options.allowCredentials, `${user}: stable`);
      assert.equal(again.totp, first.totp);
      assert.notEqual(again.options.challenge, first.options.challenge);
      assert.equal(first.options.rpId, real.options.rpId);
      assert.equal(first.options.timeout, real.options.timeout);
      assert.equal(await storedChallenges(user), 0, `${user}: no challenge stored`);
    }
    assert.deepEqual(
      await backend.getRange(LoginFailureStore.userPrefix('nobody-here')),
      [],
      'a made-up name leaves no row',
    );
  });

  it('counts every wrong password against the source, and answers a locked source as any other', async () => {
    const before = await storedChallenges('kim');
    for (let i = 0; i < MAX_ATTEMPTS; i++) await begin('kim', `guess ${i}`, ATTACKER);
    const row = await backend.get(LoginFailureStore.userPrefix('kim') + sourceKey(ATTACKER));
    assert.equal(row.value, String(MAX_ATTEMPTS));
    const locked = await begin('kim', PASSWORD, ATTACKER);
    assert.deepEqual(
      locked.options.allowCredentials.map((c) => c.id),
      [KEY_ID],
    );
    assert.equal(await storedChallenges('kim'), before, 'the right password from a locked source stores nothing');
    const types = ['user.login', 'user.login_locked'];
    const events = await backend.search({ types, user: 'kim', limit: 100, order: 'asc' });
    const seen = events.map((e) => (e as unknown as { event: string; error?: string }).error ?? e.event);
    assert.equal(seen.filter((s) => s === 'bad password').length, MAX_ATTEMPTS + 1, seen.join(', '));
    assert.ok(seen.includes('user.login_locked'));
    assert.equal(seen.at(-1), 'too many failed sign-ins from this address');
  });

  it('keeps one sign-in secret per cluster, in the backend, out of every audit event', async () => {
    const second = await AuthServer.create(
      authServerParts({ ...auth.config, backend: auth.backend, clock: auth.clock }),
    );
    assert.ok(second.signInSecret.equals(auth.signInSecret), 'a second auth server derives the same decoys');
    assert.equal(auth.signInSecret.length, 32);
    assert.equal((await backend.get(SignInSecretStore.KEY)).value, auth.signInSecret.toString('base64'));
    const events = JSON.stringify(await backend.search({ limit: 10_000, order: 'asc' }));
    assert.ok(!events.includes(auth.signInSecret.toString('base64')));
  });
});
