// Users' password hashes (scrypt, src/auth/passwords.ts makes and checks them), one backend key per user. They sit
// outside the resource API, so no `wctl get`, watch or listing ever returns one.
import { NotFound } from '../api/errors.ts';
import type { Backend } from '../backend/backend.ts';

const PREFIX = '/passwords/';

export class PasswordHashStore {
  constructor(private readonly backend: Backend) {}

  async set(user: string, hash: string): Promise<void> {
    await this.backend.put({ key: PREFIX + user, value: hash });
  }

  /** The user's hash; undefined when none is stored. */
  async get(user: string): Promise<string | undefined> {
    return this.backend.get(PREFIX + user).then(
      (item) => item.value,
      (err: unknown) => {
        if (err instanceof NotFound) return undefined;
        throw err;
      },
    );
  }

  /** Removing a user's hash twice is not an error. */
  async delete(user: string): Promise<void> {
    await this.backend.delete(PREFIX + user).catch((err: unknown) => {
      if (!(err instanceof NotFound)) throw err;
    });
  }
}
