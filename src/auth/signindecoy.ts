// Step one of a sign-in with a security key answers every well-formed request alike, so it cannot tell an
// attacker whether a password is right (the one-step sign-in gives one answer to every failure). The answer
// is a function of the user name alone: the user's real security keys, right password or not (credential
// ids are no secret: a browser needs them to find the key, and only that key can use one), or, for a name
// with none (made up, or a user without keys), decoys derived from the cluster's sign-in secret, as W3C
// WebAuthn §14.6.2 (username enumeration) advises. Answering a wrong password with decoys instead would
// bring the oracle back: the one password whose answer differs from the others' would be the right one.
import { createHmac } from 'node:crypto';
import { takesTOTP, takesWebAuthn, type SecondFactorMode } from './mfadevices.ts';
import type { AuthServer } from './server.ts';
import { loginOptions } from './webauthn.ts';

/**
 * Credential id lengths (bytes) real authenticators use: platform authenticators (16, 32), Chrome's
 * virtual one (32), security keys such as YubiKeys (64). Each decoy takes one of them.
 */
const ID_LENGTHS = [16, 32, 32, 64];
/** Transport lists as browsers report them (sorted, W3C WebAuthn §5.2.1.1). */
const TRANSPORTS = [['usb'], ['nfc', 'usb'], ['hybrid', 'internal'], ['internal']];

export interface SignInFactors {
  credentials: Array<{ id: string; transports: string[] }>;
  /** Whether the answer says a TOTP code would do instead. */
  totp: boolean;
}

/**
 * The decoy factors of a name: stable for the name (every auth server derives the same), unrelated between
 * names, and shaped like a real user's: one key, or one in four times two, and a TOTP flag as common as the
 * cluster's mode makes it. Pure: the secret is AuthServer.signInSecret.
 */
export function decoyFactors(secret: Buffer, user: string, mode: SecondFactorMode): SignInFactors {
  const derive = (label: string) =>
    createHmac('sha512', secret).update(`ward sign-in decoy\0${label}\0${user}`).digest();
  const shape = derive('shape');
  const count = shape[0]! < 192 ? 1 : 2;
  const credentials = Array.from({ length: count }, (_, i) => ({
    id: derive(`credential ${i}`)
      .subarray(0, ID_LENGTHS[shape[1 + i]! % ID_LENGTHS.length])
      .toString('base64url'),
    transports: [...TRANSPORTS[shape[3 + i]! % TRANSPORTS.length]!],
  }));
  // Under `otp` every signed-up user has an app; under `on` some do; otherwise a code does not count.
  const totp = mode === 'otp' || (mode === 'on' && shape[5]! < 128);
  return { credentials, totp };
}

/**
 * The answer to step one for `user`: the same for every password. Only `passwordChecked` (a right password
 * from an unlocked source, already counted by login.ts) stores the challenge, so only it can be finished.
 */
export async function signInChallenge(
  auth: AuthServer,
  user: string,
  passwordChecked: boolean,
): Promise<{ webauthnOptions: string; totp: boolean }> {
  const mode = auth.secondFactor;
  // Read for every name, a made-up one too (it finds none), so a name costs the same whoever holds it.
  const all = await auth.stores.mfa.list(user);
  const decoy = decoyFactors(auth.signInSecret, user, mode);
  const keys = all.flatMap((d) => (d.type === 'webauthn' ? [{ id: d.credential_id, transports: d.transports }] : []));
  const totp = all.length > 0 ? takesTOTP(mode) && all.some((d) => d.type === 'totp') : decoy.totp;
  if (!takesWebAuthn(mode)) return { webauthnOptions: '', totp };
  const real = keys.length > 0;
  const webauthnOptions = await loginOptions(auth, user, real ? keys : decoy.credentials, real && passwordChecked);
  return { webauthnOptions, totp };
}
