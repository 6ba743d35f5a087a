// Second factors at the auth server: TOTP devices (RFC 6238, as authenticator apps do them), WebAuthn
// security keys (webauthn.ts) and single-use recovery codes. A cluster's `second_factor` says whether a
// login needs one, and which kinds count (otp: TOTP, webauthn: security keys, on: either). Devices are
// kept under their own backend keys, outside the resource API, so no `wctl get` or watch can ever
// return a TOTP secret. Each code is good once: the time step it matched is stored with a
// compare-and-swap, so a replayed code, or the same code raced twice, is refused.
import { randomBytes, randomUUID } from 'node:crypto';
import { generateSecret, generateURI, verify } from 'otplib';
import { AccessDenied, BadParameter, CompareFailed, NotFound } from '../api/errors.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import {
  MAX_DEVICES,
  requiresSecondFactor,
  takesTOTP,
  takesWebAuthn,
  type DeviceInfo,
  type MFADevice,
  type TOTPDevice,
} from './mfadevices.ts';
import type { MFADeviceStore } from '../services/mfadevices.ts';
import type { AuthServer } from './server.ts';
import { checkWebAuthnAssertion } from './webauthn.ts';

/** One time step either side of now (30 s each), for clocks that drift, as RFC 6238 section 5.2 advises. */
const TOLERANCE_SECONDS = 30;
const PENDING_TTL_MS = 10 * 60_000;
const RECOVERY_CODES = 3;

export async function listDevices(auth: AuthServer, user: string): Promise<DeviceInfo[]> {
  return (await auth.stores.mfa.list(user)).map(({ id, type, name, added }) => ({ id, type, name, added }));
}

/**
 * Step one of adding a TOTP device: a fresh secret, held for 10 minutes until a code proves the app has it.
 * `viaLink`: sign-up or reset with a link, which starts the user's devices afresh (no count limit).
 */
export async function beginTOTP(
  auth: AuthServer,
  user: string,
  viaLink = false,
): Promise<{ secret: string; uri: string }> {
  if (!takesTOTP(auth.secondFactor))
    throw new BadParameter('this cluster takes security keys only (second_factor: webauthn): add one in the web UI');
  if (!viaLink && (await auth.stores.mfa.list(user)).length >= MAX_DEVICES)
    throw new BadParameter(`at most ${MAX_DEVICES} second-factor devices per user`);
  const secret = generateSecret(); // 20 random bytes, base32, as authenticator apps expect
  await auth.stores.mfa.setPending(user, secret, new Date(auth.now().getTime() + PENDING_TTL_MS));
  return { secret, uri: generateURI({ issuer: `Ward ${auth.clusterName}`, label: user, secret }) };
}

/**
 * Step two: the code from the app confirms the secret. Adding a device when the user already has one
 * takes a code from an existing one too, so a stolen certificate alone cannot add an attacker's phone.
 * The first device comes with recovery codes, shown once.
 */
export async function finishTOTP(
  auth: AuthServer,
  user: string,
  req: { name: string; code: string; existingCode?: string },
): Promise<{ device: DeviceInfo; recoveryCodes: string[] }> {
  const name = deviceName(req.name, 'authenticator');
  await proveExistingDevice(auth, user, name, req.existingCode);
  const device = await verifyNewTOTP(auth, user, name, req.code);
  return storeDevice(auth, user, device, { replace: false });
}

export function deviceName(text: string, fallback: string): string {
  const name = text.trim() || fallback;
  if (!/^[\w .@-]{1,64}$/.test(name))
    throw new BadParameter('a device name is 1-64 letters, digits, spaces, ".", "@", "_" or "-"');
  return name;
}

/**
 * A signed-in user adding a device when they have one already proves one of them (a TOTP code or a
 * security key's assertion), so a stolen certificate or web session alone cannot add an attacker's.
 */
export async function proveExistingDevice(
  auth: AuthServer,
  user: string,
  name: string,
  proof: string | undefined,
): Promise<void> {
  const existing = await auth.stores.mfa.list(user);
  if (existing.some((d) => d.name === name)) throw new BadParameter(`you already have a device named "${name}"`);
  if (existing.length === 0) return;
  if (!proof)
    throw new AccessDenied('adding another device needs a code from one you already have (or your security key)');
  if (proof.startsWith('{')) await checkWebAuthnAssertion(auth, user, proof);
  else await checkTOTP(auth.stores.mfa, user, proof, auth.now());
}

/** The pending secret confirmed by a code from the app: the device, not stored yet. */
export async function verifyNewTOTP(auth: AuthServer, user: string, name: string, code: string): Promise<TOTPDevice> {
  const secret = await auth.stores.mfa.getPending(user).catch((err) => {
    if (err instanceof NotFound)
      throw new BadParameter('no device registration in progress (it lasts 10 minutes): start again');
    throw err;
  });
  const step = await matchStep(secret, code, auth.now(), -1);
  if (step === undefined) throw new AccessDenied('the code does not match: check the app and the time on this device');
  await auth.stores.mfa.clearPending(user);
  return { id: randomUUID(), type: 'totp', name, secret, added: auth.now().toISOString(), last_time_step: step };
}

/**
 * Stores a verified device. The user's first device comes with recovery codes (shown once);
 * `replace` (a sign-up or reset link) removes the devices and codes the user had before.
 */
export async function storeDevice(
  auth: AuthServer,
  user: string,
  device: MFADevice,
  opts: { replace: boolean },
): Promise<{ device: DeviceInfo; recoveryCodes: string[] }> {
  if (opts.replace) {
    for (const old of await auth.stores.mfa.list(user)) {
      await auth.stores.mfa.remove(user, old.id).catch(() => undefined);
      await auth.audit.emit('mfa.delete', {
        user,
        name: user,
        device: old.name,
        id: old.id,
        type: old.type,
        reason: 'replaced by a sign-up or reset link',
      });
    }
    await auth.stores.mfa.clearRecoveryHashes(user);
  }
  const first = (await auth.stores.mfa.list(user)).length === 0;
  await auth.stores.mfa.add(user, device);
  const recoveryCodes = first ? await newRecoveryCodes(auth.stores.mfa, user) : [];
  await auth.audit.emit('mfa.add', { user, device: device.name, type: device.type, id: device.id });
  return { device: { id: device.id, type: device.type, name: device.name, added: device.added }, recoveryCodes };
}

export async function deleteDevice(auth: AuthServer, user: string, id: string, by: string): Promise<void> {
  const all = await auth.stores.mfa.list(user);
  const device = all.find((d) => d.id === id || d.name === id);
  if (!device) throw new NotFound(`no second-factor device "${id}"`);
  // Without this, a stolen session could remove every device and then add its own with no proof.
  const mode = auth.secondFactor;
  const usable = (d: MFADevice) => (d.type === 'totp' ? takesTOTP(mode) : takesWebAuthn(mode));
  if (requiresSecondFactor(mode) && usable(device) && !all.some((d) => d.id !== device.id && usable(d))) {
    throw new BadParameter(
      'this is your last second-factor device and the cluster requires one: add another before removing it',
    );
  }
  await auth.stores.mfa.remove(user, device.id);
  if (all.length === 1) await auth.stores.mfa.clearRecoveryHashes(user);
  await auth.audit.emit('mfa.delete', { user: by, name: user, device: device.name, id: device.id, type: device.type });
}

async function matchStep(secret: string, code: string, now: Date, afterTimeStep: number): Promise<number | undefined> {
  if (!/^\d{6}$/.test(code)) return undefined;
  const result = await verify({
    secret,
    token: code,
    epoch: Math.floor(now.getTime() / 1000),
    epochTolerance: TOLERANCE_SECONDS,
    ...(afterTimeStep >= 0 ? { afterTimeStep } : {}),
  });
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}

/** Accepts a TOTP code from any of the user's devices, once; throws AccessDenied otherwise. */
async function checkTOTP(mfa: MFADeviceStore, user: string, code: string, now: Date): Promise<void> {
  for (const stored of await mfa.listStored(user)) {
    const { device } = stored;
    if (device.type !== 'totp') continue;
    const step = await matchStep(device.secret, code, now, device.last_time_step);
    if (step === undefined) continue;
    try {
      await mfa.replace(stored, { ...device, last_time_step: step });
    } catch (err) {
      if (err instanceof CompareFailed) break; // another login used a code of this device at the same moment
      throw err;
    }
    return;
  }
  throw new AccessDenied('invalid or already used second-factor code');
}

async function newRecoveryCodes(mfa: MFADeviceStore, user: string): Promise<string[]> {
  // 12 random bytes each: 96 bits, written as three groups for reading aloud.
  const codes = Array.from({ length: RECOVERY_CODES }, () =>
    randomBytes(12)
      .toString('hex')
      .replace(/(.{8})(.{8})(.{8})/, '$1-$2-$3'),
  );
  const hashes = await Promise.all(codes.map((c) => hashPassword(c)));
  await mfa.setRecoveryHashes(user, hashes);
  return codes;
}

async function useRecoveryCode(auth: AuthServer, user: string, code: string): Promise<boolean> {
  const stored = await auth.stores.mfa.recoveryHashes(user, 'invalid or already used second-factor code');
  if (!stored) return false;
  const { hashes } = stored;
  for (const [i, hash] of hashes.entries()) {
    if (!(await verifyPassword(code.trim().toLowerCase(), hash))) continue;
    const rest = hashes.filter((_, j) => j !== i);
    // Single use, even when two logins race with the same code.
    await stored.keep(rest);
    await auth.audit.emit('mfa.recovery_code_used', { user, remaining: rest.length });
    return true;
  }
  return false;
}

export type FactorUsed = 'otp' | 'webauthn' | 'recovery_code';

/**
 * The second factor of a login, after the password was right. `secondFactor` is a 6-digit TOTP code,
 * a WebAuthn assertion (JSON, for a challenge from createAuthenticateChallenge) or a recovery code,
 * as the cluster's mode allows. With the mode off, nothing is needed and anything sent is refused (a
 * client that believes it proved more than a password must learn it did not).
 */
export async function checkSecondFactor(
  auth: AuthServer,
  user: string,
  secondFactor: string | undefined,
): Promise<FactorUsed | undefined> {
  const mode = auth.secondFactor;
  if (!requiresSecondFactor(mode)) {
    if (secondFactor) throw new BadParameter('this cluster does not use a second factor');
    return undefined;
  }
  const usable = (await auth.stores.mfa.list(user)).filter((d) =>
    d.type === 'totp' ? takesTOTP(mode) : takesWebAuthn(mode),
  );
  if (usable.length === 0) {
    throw new AccessDenied(
      'this cluster needs a second factor and you have none registered: finish sign-up from your invite link, or ' +
        'ask an admin for a reset link',
    );
  }
  if (!secondFactor)
    throw new AccessDenied(
      'second factor required: give the code from your authenticator app or use your security key',
    );
  if (secondFactor.startsWith('{')) {
    if (!takesWebAuthn(mode)) throw new AccessDenied('this cluster does not take security keys (second_factor: otp)');
    await checkWebAuthnAssertion(auth, user, secondFactor);
    return 'webauthn';
  }
  if (/^\d{6}$/.test(secondFactor)) {
    if (!takesTOTP(mode)) throw new AccessDenied('this cluster takes security keys only (second_factor: webauthn)');
    await checkTOTP(auth.stores.mfa, user, secondFactor, auth.now());
    return 'otp';
  }
  if (await useRecoveryCode(auth, user, secondFactor)) return 'recovery_code';
  throw new AccessDenied('invalid or already used second-factor code');
}
