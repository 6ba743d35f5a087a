// Sign-in failures at the auth server: every factor's failure is counted per user and source address,
// whatever its form, and answered the same way; only a sign-in that passed every factor forgets them;
// a made-up name leaves nothing behind. (End to end through the proxy: test/mfa.test.ts, bruteforce.test.ts.)
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { generate } from 'otplib';
import pino from 'pino';
import { AccessDenied } from '../api/errors.ts';
import { systemClock } from '../time/clock.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { SqliteBackend } from '../backend/sqlite.ts';
import { authenticateUser, SIGN_IN_DENIED } from './login.ts';
import { beginTOTP, storeDevice, verifyNewTOTP } from './mfa.ts';
import { authServerParts } from '../../test/fixtures/authapi.ts';
import { AuthServer } from './server.ts';
import { LoginFailureStore } from '../services/loginfailures.ts';

const PASSWORD = 'correct horse battery';
const ATTACKER = '::ffff:127.0.0.2';
const keys = generateClientKeys('unit');
const publicKeys = { sshPublicKey: keys.sshPublicKey, tlsPublicKey: keys.tlsPublicKey };
let auth: AuthServer;
let secret = '';
const nextCode = () => generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });

const signIn = (user: string, password: string, secondFactor: string | undefined, clientAddr: string) =>
  authenticateUser(auth, { user, password, secondFactor, clientAddr, ttlMs: 60_000, ...publicKeys });

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => assert.fail('signed in'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof AccessDenied, String(err));
  return err.message;
}

async function failureEvents(user: string) {
  const types = ['user.login', 'user.login_locked'];
  const events = await auth.backend.search({ types, user, limit: 1000, order: 'asc' });
  return events.map((e) => e as unknown as { event: string; success?: boolean; error?: string; source?: string });
}

before(async () => {
  auth = await AuthServer.create(
    authServerParts({
      clusterName: 'unit',
      backend: SqliteBackend.open({ path: ':memory:' }),
      clock: systemClock,
      log: pino({ level: 'silent' }),
      lockout: { maxAttempts: 5, durationMs: 60_000 },
      // 'on': a second factor starting with "{" goes to the security key path, as in the review's attack.
      secondFactor: 'on',
    }),
  );
  for (const name of ['alice', 'bob', 'carol']) {
    await auth.createUser({ name, roles: ['access'], logins: [], password: PASSWORD, createdBy: 'test' });
    const pending = await beginTOTP(auth, name);
    secret = pending.secret;
    const now = await generate({ secret, epoch: Math.floor(Date.now() / 1000) });
    const device = await verifyNewTOTP(auth, name, 'phone', now);
    await storeDevice(auth, name, device, { replace: false });
  }
});

describe('sign-in failures', () => {
  it('counts a malformed second factor like a wrong code, so codes cannot be guessed past the lockout', async () => {
    // The review's attack: with the password, 4 wrong codes and one "{" (a WebAuthn answer that does not
    // parse), again and again. The "{" used to reset the count.
    const answers: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (const guess of ['000001', '000002', '000003', '000004', '{']) {
        answers.push(await refusal(signIn('carol', PASSWORD, guess, ATTACKER)));
      }
    }
    assert.ok(
      answers.every((a) => a.startsWith(SIGN_IN_DENIED)),
      answers.join('\n'),
    );
    const events = await failureEvents('carol');
    const failed = events.filter((e) => e.event === 'user.login' && e.success === false);
    assert.equal(failed.length, 15, 'every failure is audited');
    const malformed = 'bad second factor: the security key answer is not valid JSON';
    assert.ok(
      events.some((e) => e.error?.startsWith(malformed)),
      'the malformed one too',
    );
    assert.equal(events.filter((e) => e.event === 'user.login_locked').length, 1);
    const wrong = 'bad second factor: invalid or already used second-factor code';
    const wrongCodes = events.filter((e) => e.error === wrong);
    assert.equal(wrongCodes.length, 4, 'codes checked: 4, not 12');
  });

  it('refuses even the right password and code from a locked source, with the same answer', async () => {
    secret = await deviceSecret('carol');
    const message = await refusal(signIn('carol', PASSWORD, await nextCode(), ATTACKER));
    assert.ok(message.startsWith(SIGN_IN_DENIED));
    const last = (await failureEvents('carol')).at(-1);
    assert.equal(last?.error, 'too many failed sign-ins from this address');
  });

  it('locks the source, not the account: the user still signs in from their own address', async () => {
    for (let i = 0; i < 6; i++) await refusal(signIn('bob', `wrong ${i}`, undefined, ATTACKER));
    assert.equal((await auth.users.get('bob')).spec.locked_until, undefined, 'the account is not locked');
    secret = await deviceSecret('bob');
    const certs = await signIn('bob', PASSWORD, await nextCode(), '127.0.0.1');
    assert.ok(certs.sshCert);
    await refusal(signIn('bob', PASSWORD, await nextCode(), ATTACKER));
  });

  it('forgets failures only after every factor passed: a right password with a wrong code keeps counting', async () => {
    secret = await deviceSecret('alice');
    const from = '10.1.2.3';
    for (let i = 0; i < 4; i++) await refusal(signIn('alice', `wrong ${i}`, undefined, from));
    await refusal(signIn('alice', PASSWORD, '999999', from));
    const locked = await refusal(signIn('alice', PASSWORD, await nextCode(), from));
    assert.ok(locked.startsWith(SIGN_IN_DENIED));
    assert.equal((await failureEvents('alice')).at(-1)?.error, 'too many failed sign-ins from this address');
  });

  it('keeps no failure rows for a made-up name, and answers it as a real user', async () => {
    const answers = [];
    for (let i = 0; i < 7; i++) answers.push(await refusal(signIn('nobody-here', `wrong ${i}`, '123456', ATTACKER)));
    assert.equal(new Set(answers).size, 1);
    assert.equal(answers[0], await refusal(signIn('alice', 'wrong', undefined, '10.9.9.9')));
    assert.deepEqual(await auth.backend.getRange(LoginFailureStore.userPrefix('nobody-here')), []);
    assert.equal((await failureEvents('nobody-here')).length, 7, 'still audited');
  });

  it('clears every source of a user when an admin resets the password', async () => {
    await auth.resetPassword('carol', PASSWORD, 'admin');
    assert.deepEqual(await auth.backend.getRange(LoginFailureStore.userPrefix('carol')), []);
  });
});

async function deviceSecret(user: string): Promise<string> {
  const [item] = await auth.backend.getRange(`/mfa/devices/${user}/`);
  return (JSON.parse(item!.value) as { secret: string }).secret;
}
