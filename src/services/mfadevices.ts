// Second-factor state as the auth server stores it: the devices (TOTP secrets, WebAuthn public keys), a TOTP secret
// waiting for its first code, and the hashes of the recovery codes. The keys sit outside the resource API, so no
// `wctl get` or watch returns a secret. What a code or an assertion proves is decided in src/auth (mfa.ts,
// webauthn.ts); this store only keeps the state, and every single-use step is a compare-and-swap.
import { z } from 'zod';
import { AccessDenied } from '../api/errors.ts';
import type { Backend, Item } from '../backend/backend.ts';

const totpSchema = z.object({
  id: z.string(),
  type: z.literal('totp'),
  name: z.string(),
  secret: z.string(),
  added: z.string(),
  /** The last time step a code was accepted for: only later ones are. */
  last_time_step: z.number(),
});
const webauthnSchema = z.object({
  id: z.string(),
  type: z.literal('webauthn'),
  name: z.string(),
  added: z.string(),
  /** base64url, as the browser names the credential. */
  credential_id: z.string(),
  /** COSE public key, base64url. */
  public_key: z.string(),
  /** The authenticator's signature counter at its last use: a later use must show a higher one. */
  counter: z.number(),
  transports: z.array(z.string()),
});
const deviceSchema = z.discriminatedUnion('type', [totpSchema, webauthnSchema]);
const recoverySchema = z.array(z.string());

export type TOTPDevice = z.infer<typeof totpSchema>;
export type WebAuthnDevice = z.infer<typeof webauthnSchema>;
export type MFADevice = z.infer<typeof deviceSchema>;

/** A device as read, with what a compare-and-swap of it needs. */
export interface StoredDevice<D extends MFADevice = MFADevice> {
  device: D;
  item: Item;
}

const devicesPrefix = (user: string) => `/mfa/devices/${user}/`;
const deviceKey = (user: string, id: string) => devicesPrefix(user) + id;
const pendingKey = (user: string) => `/mfa/pending/${user}`;
const recoveryKey = (user: string) => `/mfa/recovery/${user}`;

export class MFADeviceStore {
  constructor(private readonly backend: Backend) {}

  async list(user: string): Promise<MFADevice[]> {
    return (await this.listStored(user)).map((s) => s.device);
  }

  async listStored(user: string): Promise<StoredDevice[]> {
    const items = await this.backend.getRange(devicesPrefix(user));
    return items.map((item) => ({ device: deviceSchema.parse(JSON.parse(item.value)), item }));
  }

  async add(user: string, device: MFADevice): Promise<void> {
    await this.backend.create({ key: deviceKey(user, device.id), value: JSON.stringify(deviceSchema.parse(device)) });
  }

  /** Replaces a device as read by listStored; throws CompareFailed if it changed since (a race: one use wins). */
  async replace(read: StoredDevice, next: MFADevice): Promise<void> {
    const value = JSON.stringify(deviceSchema.parse(next));
    await this.backend.compareAndSwap(read.item, { key: read.item.key, value });
  }

  /** Throws NotFound if the device is gone. */
  async remove(user: string, id: string): Promise<void> {
    await this.backend.delete(deviceKey(user, id));
  }

  /** The user's devices, codes and pending registration go with the user. */
  async removeAll(user: string): Promise<void> {
    await this.backend.deleteRange(devicesPrefix(user));
    await this.backend.delete(recoveryKey(user)).catch(() => undefined);
    await this.backend.delete(pendingKey(user)).catch(() => undefined);
  }

  /** A TOTP secret waiting for the code that proves the app has it, until `expires`. */
  async setPending(user: string, secret: string, expires: Date): Promise<void> {
    await this.backend.put({ key: pendingKey(user), value: secret, expires });
  }

  /** Throws NotFound when no registration is in progress. */
  async getPending(user: string): Promise<string> {
    return (await this.backend.get(pendingKey(user))).value;
  }

  async clearPending(user: string): Promise<void> {
    await this.backend.delete(pendingKey(user)).catch(() => undefined);
  }

  async setRecoveryHashes(user: string, hashes: string[]): Promise<void> {
    await this.backend.put({ key: recoveryKey(user), value: JSON.stringify(hashes) });
  }

  async clearRecoveryHashes(user: string): Promise<void> {
    await this.backend.delete(recoveryKey(user)).catch(() => undefined);
  }

  /**
   * The hashes of the user's unused recovery codes (none: undefined), and `keep(rest)` to store what is left after
   * one was used: single use even when two logins race with one code (the loser gets AccessDenied `refused`).
   */
  async recoveryHashes(
    user: string,
    refused: string,
  ): Promise<{ hashes: string[]; keep(rest: string[]): Promise<void> } | undefined> {
    const item = await this.backend.get(recoveryKey(user)).catch(() => undefined);
    if (!item) return undefined;
    return {
      hashes: recoverySchema.parse(JSON.parse(item.value)),
      keep: async (rest) => {
        await this.backend.compareAndSwap(item, { key: item.key, value: JSON.stringify(rest) }).catch(() => {
          throw new AccessDenied(refused);
        });
      },
    };
  }
}
