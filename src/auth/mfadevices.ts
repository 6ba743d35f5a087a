// Second-factor devices and the cluster's `second_factor` mode: which kinds of device a mode takes, and what a
// user or admin may see of one. TOTP (mfa.ts) and WebAuthn (webauthn.ts) both use them, so they live below both;
// the devices themselves are kept by services/mfadevices.ts.
import type { MFADevice } from '../services/mfadevices.ts';

export type { MFADevice, TOTPDevice, WebAuthnDevice } from '../services/mfadevices.ts';

export const SECOND_FACTOR_MODES = ['off', 'otp', 'webauthn', 'on'] as const;
export type SecondFactorMode = (typeof SECOND_FACTOR_MODES)[number];

export const MAX_DEVICES = 8;

/** What a user or admin may see of a device: never the secret or the key. */
export interface DeviceInfo {
  id: string;
  type: MFADevice['type'];
  name: string;
  added: string;
}

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
