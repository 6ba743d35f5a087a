// Invite and password-reset links as stored: the backend holds only the SHA-256 of each link's secret, so the
// listing of a backend copy hands out no links. The item expires with the link. What a link allows is decided in
// src/auth/usertokens.ts.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Backend } from '../backend/backend.ts';

const PREFIX = '/user_tokens/';

export const userTokenRecordSchema = z.strictObject({
  user: z.string(),
  type: z.enum(['invite', 'reset']),
  created: z.string(),
  created_by: z.string(),
});
export type UserTokenRecord = z.infer<typeof userTokenRecordSchema>;

const keyOf = (token: string) => PREFIX + createHash('sha256').update(token).digest('hex');

export class UserTokenStore {
  constructor(private readonly backend: Backend) {}

  async create(token: string, record: UserTokenRecord, expires: Date): Promise<void> {
    const value = JSON.stringify(userTokenRecordSchema.parse(record));
    await this.backend.create({ key: keyOf(token), value, expires });
  }

  /** The link's record and expiry; undefined when it is unknown, used or expired. */
  async get(token: string): Promise<{ record: UserTokenRecord; expires?: Date } | undefined> {
    const item = await this.backend.get(keyOf(token)).catch(() => undefined);
    if (!item) return undefined;
    return { record: userTokenRecordSchema.parse(JSON.parse(item.value)), expires: item.expires };
  }

  /** Burns the link; true for the one caller whose delete removed it (of two concurrent uses, only one goes on). */
  async claim(token: string): Promise<boolean> {
    return this.backend.delete(keyOf(token)).then(
      () => true,
      () => false,
    );
  }
}
