// Invite and password-reset links: a short-lived, single-use secret that lets one user set their
// password in the browser (https://PROXY/web/invite/TOKEN). The backend holds only the secret's SHA-256,
// so the listing of a backend copy hands out no links.
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { BadParameter, NotFound } from '../api/errors.ts';
import type { AuthServer } from './server.ts';
import { checkPasswordPolicy } from './passwords.ts';

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

/** Sets the user's password and burns the token; a second use of the same link finds nothing. */
export async function useUserToken(auth: AuthServer, token: string, password: string, secondFactor: string): Promise<string> {
  const { user } = await getUserToken(auth, token);
  // Checked before the token is burnt, so a too-short password does not cost the user their link.
  checkPasswordPolicy(password);
  if (secondFactor) throw new BadParameter('this cluster has no second factor configured');
  // The delete is the claim: of two concurrent uses, only the one whose delete succeeds goes on.
  await auth.backend.delete(keyOf(token)).catch(() => {
    throw new NotFound('this link is invalid or has expired: ask for a new one');
  });
  await auth.resetPassword(user, password, user);
  return user;
}
