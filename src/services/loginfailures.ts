// Failed sign-ins counted per user and source address (src/auth/login.ts decides what a count means). One backend
// key per (user, source), its value the count and its expiry the end of the count; every change is a
// compare-and-swap, so attempts racing at several auth servers are each counted once.
import type { Backend } from '../backend/backend.ts';

const PREFIX = '/login_failures/';

export interface FailureCount {
  count: number;
  expires: Date;
}

export class LoginFailureStore {
  constructor(private readonly backend: Backend) {}

  /** Where one user's counts live, one key per source under it. */
  static userPrefix(user: string): string {
    return `${PREFIX}${user}/`;
  }

  private key(user: string, source: string): string {
    return LoginFailureStore.userPrefix(user) + source;
  }

  /** The count of a source now; undefined when there is none, or it cannot be read. */
  async peek(user: string, source: string): Promise<number | undefined> {
    return this.backend.get(this.key(user, source)).then(
      (item) => Number(item.value),
      () => undefined,
    );
  }

  /**
   * Adds one to the count; `expiresFor` gets the new count and the expiry of the old one (none: no count yet) and
   * says when the count forgets itself. Undefined after ten lost races in a row (many attempts at once).
   */
  async add(
    user: string,
    source: string,
    expiresFor: (count: number, current?: Date) => Date,
  ): Promise<FailureCount | undefined> {
    const key = this.key(user, source);
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.backend.get(key).catch(() => undefined);
      const count = Number(current?.value ?? 0) + 1;
      const expires = expiresFor(count, current?.expires);
      try {
        if (current) await this.backend.compareAndSwap(current, { key, value: String(count), expires });
        else await this.backend.create({ key, value: String(count), expires });
        return { count, expires };
      } catch {
        // Lost a race with a concurrent attempt (or the count expired in between): read again.
      }
    }
    return undefined;
  }

  /** Takes one back (best effort: a lost race keeps it, the safe side). */
  async release(user: string, source: string): Promise<void> {
    const key = this.key(user, source);
    const current = await this.backend.get(key).catch(() => undefined);
    if (!current) return;
    const count = Math.max(0, Number(current.value) - 1);
    const next = { key, value: String(count), expires: current.expires };
    await this.backend.compareAndSwap(current, next).catch(() => undefined);
  }

  /** Forgets one source's count (a sign-in that passed every factor). */
  async forget(user: string, source: string): Promise<void> {
    await this.backend.delete(this.key(user, source)).catch(() => undefined);
  }

  /** Forgets every source's count of a user (a new password). */
  async forgetAll(user: string): Promise<void> {
    await this.backend.deleteRange(LoginFailureStore.userPrefix(user)).catch(() => undefined);
  }
}
