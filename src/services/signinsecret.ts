// The cluster's sign-in secret: 32 random bytes keying the decoys a security key's sign-in step one answers for
// names with no keys (src/auth/signindecoy.ts). Outside the resource API, so no `wctl get`, watch or audit event
// returns it. Never logged.
import { randomBytes } from 'node:crypto';
import { AlreadyExists } from '../api/errors.ts';
import type { Backend } from '../backend/backend.ts';

export class SignInSecretStore {
  static readonly KEY = '/cluster/sign_in_secret';

  constructor(private readonly backend: Backend) {}

  /**
   * The secret, made at the first start. Every auth server of the cluster must derive the same decoys, so it lives
   * in the backend; create() makes one of several auth servers starting at once win.
   */
  async ensure(): Promise<Buffer> {
    const fresh = randomBytes(32).toString('base64');
    try {
      await this.backend.create({ key: SignInSecretStore.KEY, value: fresh });
    } catch (err) {
      if (!(err instanceof AlreadyExists)) throw err;
    }
    return Buffer.from((await this.backend.get(SignInSecretStore.KEY)).value, 'base64');
  }
}
