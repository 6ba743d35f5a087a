// Second-factor devices as the auth server stores them: their shapes, their backend keys and which kinds a
// cluster's `second_factor` mode takes. TOTP (mfa.ts) and WebAuthn (webauthn.ts) both read and write them,
// so they live below both. The keys sit outside the resource API: no `wctl get` or watch returns a secret.
import type { Backend } from '../backend/backend.ts';

export const SECOND_FACTOR_MODES = ['off', 'otp', 'webauthn', 'on'] as const;
export type SecondFactorMode = (typeof SECOND_FACTOR_MODES)[number];

export const MAX_DEVICES = 8;

export interface TOTPDevice {
  id: string;
  type: 'totp';
  name: string;
  secret: string;
  added: string;
  /** The last time step a code was accepted for: only later ones are. */
  last_time_step: number;
}

export interface WebAuthnDevice {
  id: string;
  type: 'webauthn';
  name: string;
  added: string;
  /** base64url, as the browser names the credential. */
  credential_id: string;
  /** COSE public key, base64url. */
  public_key: string;
  /** The authenticator's signature counter at its last use: a later use must show a higher one. */
  counter: number;
  transports: string[];
}

export type MFADevice = TOTPDevice | WebAuthnDevice;

/** What a user or admin may see of a device: never the secret or the key. */
export interface DeviceInfo {
  id: string;
  type: MFADevice['type'];
  name: string;
  added: string;
}

export const deviceKey = (user: string, id: string) => `/mfa/devices/${user}/${id}`;
export const devicesPrefix = (user: string) => `/mfa/devices/${user}/`;
/** A TOTP secret waiting for its first code. */
export const pendingKey = (user: string) => `/mfa/pending/${user}`;
export const recoveryKey = (user: string) => `/mfa/recovery/${user}`;

export function requiresSecondFactor(mode: SecondFactorMode): boolean {
  return mode !== 'off';
}
/** Which kinds of device a login may use under a mode (with it off, any may be registered in advance). */
export function takesTOTP(mode: SecondFactorMode): boolean {
  return mode !== 'webauthn';
}
export function takesWebAuthn(mode: SecondFactorMode): boolean {
  return mode !== 'otp';
}

export async function devices(backend: Backend, user: string): Promise<MFADevice[]> {
  return (await backend.getRange(devicesPrefix(user))).map((i) => JSON.parse(i.value) as MFADevice);
}

/** The user's devices, codes and pending registration go with the user. */
export async function deleteAllFactors(backend: Backend, user: string): Promise<void> {
  await backend.deleteRange(devicesPrefix(user));
  await backend.delete(recoveryKey(user)).catch(() => undefined);
  await backend.delete(pendingKey(user)).catch(() => undefined);
}
