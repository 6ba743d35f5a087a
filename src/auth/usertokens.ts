// Invite and password-reset links: a short-lived, single-use secret that lets one user set their
// password in the browser (https://PROXY/web/invite/TOKEN). The backend holds only the secret's SHA-256,
// so the listing of a backend copy hands out no links.
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { BadParameter, NotFound } from '../api/errors.ts';
import type { AuthServer } from './server.ts';
import { checkPasswordPolicy } from './passwords.ts';
import { deviceName, storeDevice, verifyNewTOTP } from './mfa.ts';
import { requiresSecondFactor, takesTOTP, takesWebAuthn, type MFADevice } from './mfadevices.ts';
import { verifyNewWebAuthn } from './webauthn.ts';

const PREFIX = '/user_tokens/';
const TOKEN = /^[0-9a-f]{64}$/;
export const USER_TOKEN_TTL_MS = 3_600_000;
export type UserTokenType = 'invite' | 'reset';

const recordSchema = z.strictObject({
  user: z.string(),
  type: z.enum(['invite', 'reset']),
  created: z.string(),
  created_by: z.string(),
});

function keyOf(token: string): string {
  // One answer for a malformed and an unknown token: neither says anything about the other tokens.
  if (!TOKEN.test(token)) throw new NotFound('this link is invalid or has expired: ask for a new one');
  return PREFIX + createHash('sha256').update(token).digest('hex');
}

export async function createUserToken(auth: AuthServer, user: string, type: UserTokenType, by: string): Promise<{ token: string; expires: string }> {
  const token = randomBytes(32).toString('hex');
  const expires = new Date(auth.now().getTime() + USER_TOKEN_TTL_MS);
  const record = { user, type, created: auth.now().toISOString(), created_by: by };
  await auth.backend.create({ key: keyOf(token), value: JSON.stringify(record), expires });
  return { token, expires: expires.toISOString() };
}

export async function getUserToken(auth: AuthServer, token: string): Promise<{ user: string; type: UserTokenType; expires: string }> {
  const key = keyOf(token);
  const item = await auth.backend.get(key).catch(() => {
    throw new NotFound('this link is invalid or has expired: ask for a new one');
  });
  const record = recordSchema.parse(JSON.parse(item.value));
  return { user: record.user, type: record.type, expires: item.expires?.toISOString() ?? '' };
}

/**
 * Sets the user's password and burns the token; a second use of the same link finds nothing. When the
 * cluster requires a second factor, the link also registers the user's first device (the link is the
 * credential that allows it: a user without a device could not sign in to add one). A reset link
 * replaces the devices the user had, for a user who lost theirs.
 */
export async function useUserToken(
  auth: AuthServer,
  req: { token: string; password: string; totpCode: string; webauthnResponse: string; deviceName: string },
): Promise<{ user: string; recoveryCodes: string[]; factor?: 'otp' | 'webauthn' }> {
  const { user } = await getUserToken(auth, req.token);
  // Checked before the token is burnt, so a too-short password or a mistyped code does not cost the user their link.
  checkPasswordPolicy(req.password);
  const registering = Boolean(req.totpCode || req.webauthnResponse);
  let device: MFADevice | undefined;
  if (!requiresSecondFactor(auth.secondFactor)) {
    if (registering) throw new BadParameter('this cluster has no second factor configured');
  } else if (!registering) {
    throw new BadParameter('this cluster needs a second factor: register an authenticator app or a security key with your password');
  } else if (req.webauthnResponse) {
    if (!takesWebAuthn(auth.secondFactor)) throw new BadParameter('this cluster takes authenticator apps only (second_factor: otp)');
    device = await verifyNewWebAuthn(auth, user, deviceName(req.deviceName, 'security key'), req.webauthnResponse);
  } else {
    if (!takesTOTP(auth.secondFactor)) throw new BadParameter('this cluster takes security keys only (second_factor: webauthn)');
    device = await verifyNewTOTP(auth, user, deviceName(req.deviceName, 'authenticator'), req.totpCode);
  }
  // The delete is the claim: of two concurrent uses, only the one whose delete succeeds goes on.
  await auth.backend.delete(keyOf(req.token)).catch(() => {
    throw new NotFound('this link is invalid or has expired: ask for a new one');
  });
  await auth.resetPassword(user, req.password, user);
  if (!device) return { user, recoveryCodes: [] };
  const { recoveryCodes } = await storeDevice(auth, user, device, { replace: true });
  return { user, recoveryCodes, factor: device.type === 'totp' ? 'otp' : 'webauthn' };
}
