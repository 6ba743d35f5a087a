// WebAuthn second factors (security keys, platform authenticators) at the auth server, checked with
// @simplewebauthn/server. Credentials sit beside the TOTP devices (mfa.ts), outside the resource API.
// The relying party is the proxy's host name (auth_service.webauthn.rp_id): a browser lets a page ask
// only for its own site's credentials, and the server checks the RP ID hash, the origin, the signature
// and that the sign count moved forward. Each challenge is good once (claimed by deleting it) for 5 min.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { AccessDenied, BadParameter, CompareFailed } from '../api/errors.ts';
import type { ChallengePurpose } from '../services/webauthnchallenges.ts';
import { MAX_DEVICES, takesTOTP, takesWebAuthn, type MFADevice, type WebAuthnDevice } from './mfadevices.ts';
import type { AuthServer } from './server.ts';

const CHALLENGE_TTL_MS = 5 * 60_000;
const TIMEOUT_MS = 60_000;
/** A browser's answer is a few hundred bytes; a larger one is not read. */
export const MAX_WEBAUTHN_JSON = 16 * 1024;
// ES256 (every security key), EdDSA, RS256 (Windows Hello).
const ALGORITHMS = [-7, -8, -257];

export function rpID(auth: AuthServer): string {
  return auth.config.webauthnRPID ?? 'localhost';
}

function parseJSON<T>(text: string, what: string): T {
  if (text.length > MAX_WEBAUTHN_JSON) throw new BadParameter(`${what} is too large`);
  try {
    const data = JSON.parse(text) as unknown;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('not an object');
    return data as T;
  } catch {
    throw new BadParameter(`${what} is not valid JSON`);
  }
}

/**
 * The challenge and origin the browser signed (from clientDataJSON), to find the stored challenge and
 * to check the page was on the relying party's site: https, and its host the RP ID or a name under it.
 */
function signedClientData(
  response: { response?: { clientDataJSON?: unknown } },
  rp: string,
): { challenge: string; origin: string } {
  let data: { challenge?: unknown; origin?: unknown };
  try {
    data = JSON.parse(
      Buffer.from(String(response.response?.clientDataJSON ?? ''), 'base64url').toString('utf8'),
    ) as typeof data;
  } catch {
    throw new AccessDenied('the security key answer is malformed');
  }
  if (typeof data.challenge !== 'string' || typeof data.origin !== 'string')
    throw new AccessDenied('the security key answer is malformed');
  let url: URL;
  try {
    url = new URL(data.origin);
  } catch {
    throw new AccessDenied('the security key answer names no valid origin');
  }
  if (url.protocol !== 'https:' || !(url.hostname === rp || url.hostname.endsWith(`.${rp}`))) {
    throw new AccessDenied(`security keys are registered for ${rp}: sign in at https://${rp}`);
  }
  return { challenge: data.challenge, origin: data.origin };
}

async function storeChallenge(auth: AuthServer, user: string, purpose: ChallengePurpose, challenge: string) {
  const expires = new Date(auth.now().getTime() + CHALLENGE_TTL_MS);
  await auth.stores.webauthnChallenges.store(user, purpose, challenge, expires);
}

/** The delete is the claim: of two answers to one challenge (a replay, or a race), only the first goes on. */
async function claimChallenge(auth: AuthServer, user: string, purpose: ChallengePurpose, challenge: string) {
  // An expired challenge is not found either.
  const claimed = await auth.stores.webauthnChallenges.claim(user, purpose, challenge);
  if (!claimed) throw new AccessDenied('the security key challenge has expired or was already used: try again');
}

/** Step one of adding a security key: options for navigator.credentials.create, as JSON. */
export async function beginWebAuthnRegistration(auth: AuthServer, user: string, viaLink = false): Promise<string> {
  if (!takesWebAuthn(auth.secondFactor))
    throw new BadParameter('this cluster takes authenticator apps only (second_factor: otp)');
  const all = viaLink ? [] : await auth.stores.mfa.list(user);
  if (all.length >= MAX_DEVICES) throw new BadParameter(`at most ${MAX_DEVICES} second-factor devices per user`);
  const options = await generateRegistrationOptions({
    rpName: `Ward ${auth.clusterName}`,
    rpID: rpID(auth),
    userName: user,
    userID: new Uint8Array(randomBytes(16)),
    timeout: TIMEOUT_MS,
    attestationType: 'none',
    excludeCredentials: all.flatMap((d) =>
      d.type === 'webauthn' ? [{ id: d.credential_id, transports: d.transports }] : [],
    ),
    // A second factor after the password: no resident key, and a touch is enough (no PIN).
    authenticatorSelection: { residentKey: 'discouraged', userVerification: 'discouraged' },
    supportedAlgorithmIDs: ALGORITHMS,
  });
  await storeChallenge(auth, user, 'register', options.challenge);
  return JSON.stringify(options);
}

/** Step two: the browser's registration response checked against the challenge; the device, not stored yet. */
export async function verifyNewWebAuthn(
  auth: AuthServer,
  user: string,
  name: string,
  responseJSON: string,
): Promise<WebAuthnDevice> {
  const response = parseJSON<RegistrationResponseJSON>(responseJSON, 'the security key registration');
  const rp = rpID(auth);
  const { challenge, origin } = signedClientData(response, rp);
  await claimChallenge(auth, user, 'register', challenge);
  const result = await verifyRegistrationResponse({
    response,
    expectedChallenge: challenge,
    expectedOrigin: origin,
    expectedRPID: rp,
    requireUserVerification: false,
    supportedAlgorithmIDs: ALGORITHMS,
  }).catch((err: Error) => {
    auth.config.log.debug({ err: err.message, user }, 'security key registration refused');
    throw new AccessDenied('the security key registration could not be verified: try again');
  });
  if (!result.verified) throw new AccessDenied('the security key registration could not be verified: try again');
  const { credential } = result.registrationInfo;
  if ((await auth.stores.mfa.list(user)).some((d) => d.type === 'webauthn' && d.credential_id === credential.id)) {
    throw new BadParameter('this security key is already registered');
  }
  return {
    id: randomUUID(),
    type: 'webauthn',
    name,
    added: auth.now().toISOString(),
    credential_id: credential.id,
    public_key: Buffer.from(credential.publicKey).toString('base64url'),
    counter: credential.counter,
    transports: credential.transports ?? [],
  };
}

/**
 * A login challenge for the user's security keys (JSON for navigator.credentials.get), or '' when they
 * have none the cluster takes; `totp` says whether a code would do instead. `anyMode`: for proving a
 * device the user has (before adding another), whatever the login mode.
 */
export async function createAuthenticateChallenge(
  auth: AuthServer,
  user: string,
  anyMode = false,
): Promise<{ webauthnOptions: string; totp: boolean }> {
  const all: MFADevice[] = await auth.stores.mfa.list(user);
  const totp = all.some((d) => d.type === 'totp') && (anyMode || takesTOTP(auth.secondFactor));
  const keys = all.flatMap((d) => (d.type === 'webauthn' ? [d] : []));
  if (keys.length === 0 || !(anyMode || takesWebAuthn(auth.secondFactor))) return { webauthnOptions: '', totp };
  const credentials = keys.map((d) => ({ id: d.credential_id, transports: d.transports }));
  return { webauthnOptions: await loginOptions(auth, user, credentials, true), totp };
}

/**
 * Options for navigator.credentials.get naming `credentials`, with a fresh challenge that is stored (good
 * once) when `store`. Real and decoy challenges (signindecoy.ts) are both made here, so they share one shape.
 */
export async function loginOptions(
  auth: AuthServer,
  user: string,
  credentials: Array<{ id: string; transports: string[] }>,
  store: boolean,
): Promise<string> {
  const options = await generateAuthenticationOptions({
    rpID: rpID(auth),
    allowCredentials: credentials,
    userVerification: 'discouraged',
    timeout: TIMEOUT_MS,
  });
  if (store) await storeChallenge(auth, user, 'login', options.challenge);
  return JSON.stringify(options);
}

/** Accepts an assertion by one of the user's security keys, once; throws AccessDenied otherwise. */
export async function checkWebAuthnAssertion(auth: AuthServer, user: string, assertionJSON: string): Promise<void> {
  const response = parseJSON<AuthenticationResponseJSON>(assertionJSON, 'the security key answer');
  const rp = rpID(auth);
  const { challenge, origin } = signedClientData(response, rp);
  await claimChallenge(auth, user, 'login', challenge);
  const stored = (await auth.stores.mfa.listStored(user)).find(
    ({ device: d }) => d.type === 'webauthn' && d.credential_id === response.id,
  );
  if (!stored || stored.device.type !== 'webauthn')
    throw new AccessDenied('this security key is not registered to you');
  const device: WebAuthnDevice = stored.device;
  const result = await verifyAuthenticationResponse({
    response,
    expectedChallenge: challenge,
    expectedOrigin: origin,
    expectedRPID: rp,
    credential: {
      id: device.credential_id,
      publicKey: new Uint8Array(Buffer.from(device.public_key, 'base64url')),
      counter: device.counter,
    },
    requireUserVerification: false,
  }).catch((err: Error) => {
    auth.config.log.debug({ err: err.message, user }, 'security key assertion refused');
    throw new AccessDenied('the security key answer could not be verified');
  });
  const { newCounter } = result.authenticationInfo;
  // A counter that did not move forward means two keys share one secret (a cloned key): W3C WebAuthn
  // §6.1.1. Keys that keep no counter send 0 every time, which is allowed.
  if (!result.verified || ((newCounter > 0 || device.counter > 0) && newCounter <= device.counter)) {
    throw new AccessDenied('the security key answer could not be verified (its signature counter did not increase)');
  }
  try {
    await auth.stores.mfa.replace(stored, { ...device, counter: newCounter });
  } catch (err) {
    if (err instanceof CompareFailed)
      throw new AccessDenied('the security key was used by another login at the same moment: try again');
    throw err;
  }
}
