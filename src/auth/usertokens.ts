// Invite and password-reset links: a short-lived, single-use secret that lets one user set their
// password in the browser (https://PROXY/web/invite/TOKEN). The backend holds only the secret's SHA-256,
// so the listing of a backend copy hands out no links.
import { randomBytes } from 'node:crypto';
import { BadParameter, NotFound } from '../api/errors.ts';
import type { AuthServer } from './server.ts';
import { checkPasswordPolicy } from './passwords.ts';
import { deviceName, storeDevice, verifyNewTOTP } from './mfa.ts';
import { requiresSecondFactor, takesTOTP, takesWebAuthn, type MFADevice } from './mfadevices.ts';
import { verifyNewWebAuthn } from './webauthn.ts';

const TOKEN = /^[0-9a-f]{64}$/;
export const USER_TOKEN_TTL_MS = 3_600_000;
export type UserTokenType = 'invite' | 'reset';

const LINK_GONE = 'this link is invalid or has expired: ask for a new one';

function checkToken(token: string): string {
  // One answer for a malformed and an unknown token: neither says anything about the other tokens.
  if (!TOKEN.test(token)) throw new NotFound(LINK_GONE);
  return token;
}

export async function createUserToken(
  auth: AuthServer,
  user: string,
  type: UserTokenType,
  by: string,
): Promise<{ token: string; expires: string }> {
  const token = randomBytes(32).toString('hex');
  const expires = new Date(auth.now().getTime() + USER_TOKEN_TTL_MS);
  const record = { user, type, created: auth.now().toISOString(), created_by: by };
  await auth.stores.userTokens.create(token, record, expires);
  return { token, expires: expires.toISOString() };
}

export async function getUserToken(
  auth: AuthServer,
  token: string,
): Promise<{ user: string; type: UserTokenType; expires: string }> {
  const stored = await auth.stores.userTokens.get(checkToken(token));
  if (!stored) throw new NotFound(LINK_GONE);
  const { record, expires } = stored;
  return { user: record.user, type: record.type, expires: expires?.toISOString() ?? '' };
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
    throw new BadParameter(
      'this cluster needs a second factor: register an authenticator app or a security key with your password',
    );
  } else if (req.webauthnResponse) {
    if (!takesWebAuthn(auth.secondFactor))
      throw new BadParameter('this cluster takes authenticator apps only (second_factor: otp)');
    device = await verifyNewWebAuthn(auth, user, deviceName(req.deviceName, 'security key'), req.webauthnResponse);
  } else {
    if (!takesTOTP(auth.secondFactor))
      throw new BadParameter('this cluster takes security keys only (second_factor: webauthn)');
    device = await verifyNewTOTP(auth, user, deviceName(req.deviceName, 'authenticator'), req.totpCode);
  }
  // The delete is the claim: of two concurrent uses, only the one whose delete succeeds goes on.
  if (!(await auth.stores.userTokens.claim(checkToken(req.token)))) throw new NotFound(LINK_GONE);
  await auth.resetPassword(user, req.password, user);
  if (!device) return { user, recoveryCodes: [] };
  const { recoveryCodes } = await storeDevice(auth, user, device, { replace: true });
  return { user, recoveryCodes, factor: device.type === 'totp' ? 'otp' : 'webauthn' };
}
