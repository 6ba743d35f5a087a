// Web sessions as stored: one backend item per browser session, keyed by the SHA-256 of its bearer secret (the
// auth server never holds the secret itself), expiring with the session's certificates. What a session may do,
// and when it ends, is decided in src/auth/websessions.ts.
import { z } from 'zod';
import type { Backend, Item } from '../backend/backend.ts';

const PREFIX = '/web_sessions/';

export const webSessionRecordSchema = z.strictObject({
  user: z.string(),
  ssh_cert: z.string(),
  tls_cert: z.string(),
  sealed_keys: z.string(),
  created: z.string(),
  last_active: z.string(),
  idle_timeout_ms: z.number().int().positive(),
  expires: z.string(),
});
export type WebSessionRecord = z.infer<typeof webSessionRecordSchema>;

/** A session as read, with what a compare-and-swap of it needs. */
export interface StoredWebSessionRecord {
  record: WebSessionRecord;
  item: Item;
}

export class WebSessionStore {
  constructor(private readonly backend: Backend) {}

  /** `idHash`: the SHA-256 of the bearer secret, hex (checked by the caller). */
  async create(idHash: string, record: WebSessionRecord, expires: Date): Promise<void> {
    await this.backend.create({ key: PREFIX + idHash, value: JSON.stringify(record), expires });
  }

  /** The session; undefined when it is missing, expired, unreadable or not of this shape. */
  async get(idHash: string): Promise<StoredWebSessionRecord | undefined> {
    const item = await this.backend.get(PREFIX + idHash).catch(() => undefined);
    if (!item) return undefined;
    const parsed = webSessionRecordSchema.safeParse(JSON.parse(item.value));
    return parsed.success ? { record: parsed.data, item } : undefined;
  }

  /** Writes `next` over the session as read; false if it changed since (another proxy wrote it first). */
  async replace(read: StoredWebSessionRecord, next: WebSessionRecord): Promise<boolean> {
    const { item } = read;
    const replaceWith = { key: item.key, value: JSON.stringify(next), expires: item.expires };
    return this.backend.compareAndSwap(item, replaceWith).then(
      () => true,
      () => false,
    );
  }

  /** Deleting a session twice is not an error. */
  async delete(idHash: string): Promise<void> {
    await this.backend.delete(PREFIX + idHash).catch(() => undefined);
  }
}
