// WebAuthn at the auth server, against a software authenticator written here from the W3C WebAuthn
// data formats (authenticator data, "none" attestation, ES256 signatures): the checks a browser test
// cannot reach, such as a cloned key's counter, a foreign origin, another user's challenge, and the
// rules around sign-up links and the last device.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { before, describe, it } from 'node:test';
import pino from 'pino';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import { systemClock } from '../time/clock.ts';
import { SqliteBackend } from '../backend/sqlite.ts';
import { checkSecondFactor, deleteDevice, listDevices, storeDevice } from './mfa.ts';
import { authServerParts } from '../../test/fixtures/authapi.ts';
import { AuthServer } from './server.ts';
import { createUserToken, getUserToken, useUserToken } from './usertokens.ts';
import { beginWebAuthnRegistration, createAuthenticateChallenge, verifyNewWebAuthn } from './webauthn.ts';

const ORIGIN = 'https://localhost:3080';
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** A security key in software: one P-256 credential and its signature counter. */
class SoftKey {
  readonly id = randomBytes(16);
  readonly key: KeyObject;
  private readonly publicJWK: { x: string; y: string };
  counter = 0;
  constructor(readonly rpID = 'localhost') {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.key = pair.privateKey;
    this.publicJWK = pair.publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  }
  private rpHash() {
    return createHash('sha256').update(this.rpID).digest();
  }
  private counterBytes() {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(this.counter);
    return b;
  }
  private clientData(type: string, options: string, origin: string) {
    const { challenge } = JSON.parse(options) as { challenge: string };
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }
  register(options: string, origin = ORIGIN): string {
    // COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
    const cose = new Map<number, number | Uint8Array>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, Buffer.from(this.publicJWK.x, 'base64url')],
      [-3, Buffer.from(this.publicJWK.y, 'base64url')],
    ]);
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(this.id.length);
    // flags 0x41: user present, attested credential data included.
    const authData = Buffer.concat([
      this.rpHash(),
      Buffer.from([0x41]),
      this.counterBytes(),
      Buffer.alloc(16),
      idLen,
      this.id,
      Buffer.from(isoCBOR.encode(cose)),
    ]);
    const attestation = isoCBOR.encode(
      new Map<string, unknown>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]) as never,
    );
    return JSON.stringify({
      id: b64u(this.id),
      rawId: b64u(this.id),
      type: 'public-key',
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64u(this.clientData('webauthn.create', options, origin)),
        attestationObject: b64u(attestation),
        transports: ['usb'],
      },
    });
  }
  assert(options: string, origin = ORIGIN, bump = 1): string {
    this.counter += bump;
    const authData = Buffer.concat([this.rpHash(), Buffer.from([0x01]), this.counterBytes()]);
    const clientData = this.clientData('webauthn.get', options, origin);
    const signature = sign(
      'sha256',
      Buffer.concat([authData, createHash('sha256').update(clientData).digest()]),
      this.key,
    );
    return JSON.stringify({
      id: b64u(this.id),
      rawId: b64u(this.id),
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON: b64u(clientData), authenticatorData: b64u(authData), signature: b64u(signature) },
    });
  }
}

let auth: AuthServer;
const key = new SoftKey();

async function loginChallenge(user: string): Promise<string> {
  const { webauthnOptions } = await createAuthenticateChallenge(auth, user);
  assert.ok(webauthnOptions, 'a challenge for the user');
  return webauthnOptions;
}

before(async () => {
  auth = await AuthServer.create(
    authServerParts({
      clusterName: 'unit',
      backend: SqliteBackend.open({ path: ':memory:' }),
      clock: systemClock,
      log: pino({ level: 'silent' }),
      lockout: { maxAttempts: 5, durationMs: 60_000 },
      secondFactor: 'on',
      webauthnRPID: 'localhost',
    }),
  );
  for (const name of ['alice', 'bob', 'carol']) {
    await auth.createUser({
      name,
      roles: ['access'],
      logins: [],
      password: 'correct horse battery',
      createdBy: 'test',
    });
  }
  const device = await verifyNewWebAuthn(
    auth,
    'alice',
    'yubikey',
    key.register(await beginWebAuthnRegistration(auth, 'alice')),
  );
  await storeDevice(auth, 'alice', device, { replace: false });
});

describe('WebAuthn second factor', () => {
  it('accepts an assertion by the registered key once, and refuses the same answer again', async () => {
    const answer = key.assert(await loginChallenge('alice'));
    assert.equal(await checkSecondFactor(auth, 'alice', answer), 'webauthn');
    await assert.rejects(checkSecondFactor(auth, 'alice', answer), /challenge has expired or was already used/);
  });

  it('refuses a key whose signature counter did not go up (a cloned key)', async () => {
    const answer = key.assert(await loginChallenge('alice'), ORIGIN, 0);
    await assert.rejects(checkSecondFactor(auth, 'alice', answer), /could not be verified/);
    // The real key, whose counter moves on, still works.
    assert.equal(await checkSecondFactor(auth, 'alice', key.assert(await loginChallenge('alice'))), 'webauthn');
  });

  it('refuses an answer signed on another site, and a key bound to another RP ID', async () => {
    await assert.rejects(
      checkSecondFactor(auth, 'alice', key.assert(await loginChallenge('alice'), 'https://evil.example')),
      /registered for localhost/,
    );
    const phished = new SoftKey('evil.example');
    await assert.rejects(
      verifyNewWebAuthn(auth, 'bob', 'k', phished.register(await beginWebAuthnRegistration(auth, 'bob'))),
      /could not be verified/,
    );
  });

  it("refuses alice's key answering a challenge made for bob, and a challenge made up by the client", async () => {
    const bobKey = new SoftKey();
    await storeDevice(
      auth,
      'bob',
      await verifyNewWebAuthn(auth, 'bob', 'key', bobKey.register(await beginWebAuthnRegistration(auth, 'bob'))),
      { replace: false },
    );
    const forBob = await loginChallenge('bob');
    await assert.rejects(
      checkSecondFactor(auth, 'alice', key.assert(forBob)),
      /challenge has expired or was already used/,
    );
    await assert.rejects(
      checkSecondFactor(auth, 'bob', key.assert(JSON.stringify({ challenge: b64u(randomBytes(32)) }))),
      /challenge has expired/,
    );
  });

  it('refuses registering the same key twice', async () => {
    await assert.rejects(
      verifyNewWebAuthn(auth, 'alice', 'again', key.register(await beginWebAuthnRegistration(auth, 'alice'))),
      /already registered/,
    );
  });

  it('keeps the last device the cluster takes while a second factor is required', async () => {
    const [device] = await listDevices(auth, 'alice');
    await assert.rejects(deleteDevice(auth, 'alice', device!.id, 'alice'), /last second-factor device/);
  });

  it(
    'makes a sign-up link register a device when one is required, ' + 'and refuses the link alone without costing it',
    async () => {
      const { token } = await createUserToken(auth, 'carol', 'invite', 'test');
      const base = { token, password: 'a long new password', totpCode: '', webauthnResponse: '', deviceName: '' };
      await assert.rejects(useUserToken(auth, base), /needs a second factor/);
      assert.equal((await getUserToken(auth, token)).user, 'carol', 'the link still works');
      const carolKey = new SoftKey();
      const used = await useUserToken(auth, {
        ...base,
        webauthnResponse: carolKey.register(await beginWebAuthnRegistration(auth, 'carol', true)),
      });
      assert.equal(used.factor, 'webauthn');
      assert.equal(used.recoveryCodes.length, 3);
      await assert.rejects(getUserToken(auth, token), /invalid or has expired/);
      assert.equal(await checkSecondFactor(auth, 'carol', carolKey.assert(await loginChallenge('carol'))), 'webauthn');
    },
  );
});
