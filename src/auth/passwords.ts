// Password hashing with scrypt (RFC 7914). The stored form names its parameters so they can be raised
// later without breaking existing hashes: scrypt$N$r$p$salt$hash (base64).
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { BadParameter } from '../api/errors.ts';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEYLEN = 32;
const MAXMEM = 64 * 1024 * 1024;

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEYLEN, { N: n, r, p, maxmem: MAXMEM }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export function checkPasswordPolicy(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH)
    throw new BadParameter(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH)
    throw new BadParameter(`password must be at most ${MAX_PASSWORD_LENGTH} characters`);
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, salt, N, R, P);
  return ['scrypt', N, R, P, salt.toString('base64'), hash.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash || password.length > MAX_PASSWORD_LENGTH) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await derive(password, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * Hashed when a user is missing, so a wrong user name takes as long as a wrong password and the
 * timing does not reveal which users exist.
 */
export const DUMMY_HASH =
  `scrypt$${N}$${R}$${P}$${Buffer.alloc(16).toString('base64')}` + `$${Buffer.alloc(KEYLEN).toString('base64')}`;

export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
