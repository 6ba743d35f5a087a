// The browser's side of second factors: what the cluster asks for (from /webapi/ping), and the two
// WebAuthn ceremonies through @simplewebauthn/browser. The answers go to the proxy as JSON; the auth
// server checks them. Nothing here is secret or kept.
import { startAuthentication, startRegistration } from '@simplewebauthn/browser';
import type { SecondFactorMode } from '../../src/api/webapi.ts';
import { api } from './api.ts';

export async function secondFactorMode(): Promise<SecondFactorMode> {
  const ping = await api<{ second_factor?: string }>('GET', '/webapi/ping');
  const mode = ping.second_factor ?? 'off';
  return mode === 'otp' || mode === 'webauthn' || mode === 'on' ? mode : 'off';
}

export const takesTOTP = (mode: SecondFactorMode) => mode !== 'webauthn';
export const takesWebAuthn = (mode: SecondFactorMode) => mode !== 'otp';

/** Touch the security key for a challenge; the assertion, as JSON the server reads. */
export async function signWithKey(options: unknown): Promise<Record<string, unknown>> {
  try {
    return (await startAuthentication({
      optionsJSON: options as Parameters<typeof startAuthentication>[0]['optionsJSON'],
    })) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new Error(keyProblem(err));
  }
}

/** Register a new security key for the options from the server; the registration, as JSON. */
export async function registerKey(options: unknown): Promise<Record<string, unknown>> {
  try {
    return (await startRegistration({
      optionsJSON: options as Parameters<typeof startRegistration>[0]['optionsJSON'],
    })) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new Error(keyProblem(err));
  }
}

function keyProblem(err: unknown): string {
  const name = (err as { name?: string }).name;
  if (name === 'NotAllowedError') return 'the security key was not used (cancelled or timed out): try again';
  if (name === 'InvalidStateError') return 'this security key is already registered';
  if (name === 'SecurityError')
    return `security keys are not set up for ${location.hostname}: reach the proxy by its configured name`;
  return `the security key failed: ${(err as Error).message ?? String(err)}`;
}
