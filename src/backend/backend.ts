// The storage seam of the Auth Service (modelled on Teleport's backend.Backend). Only the auth server
// holds a Backend; everything else asks it over the Auth API. Keys are '/'-separated paths such as
// '/users/alice'; values are opaque strings (the services store versioned JSON resources).
// Implementations: sqlite.ts (default, one auth server) and postgres.ts (several auth servers = HA).
import type { AuditEvent } from '../api/types.ts';

export interface Item {
  key: string;
  value: string;
  /** Opaque, changes on every write of this key; compare with === only. */
  revision: string;
  /** Absent = never expires. An expired item is invisible to reads and is deleted (with a delete event). */
  expires?: Date;
}

/** What a caller hands in to write: the revision is assigned by the backend. */
export type ItemInput = Omit<Item, 'revision'>;

export type BackendEvent =
  /** First event of every watch: the watcher is subscribed, so reading current state now misses nothing. */
  { type: 'init' } | { type: 'put'; item: Item } | { type: 'delete'; key: string };

export interface Watcher extends AsyncIterable<BackendEvent> {
  /** Stops the watch; the iterator then ends. */
  close(): void;
}

export interface Backend {
  /** Throws NotFound. */
  get(key: string): Promise<Item>;
  /**
   * Items whose key starts with `prefix`, in key order, at most `limit` (default 10,000); with `after`, only
   * keys greater than it (a page that continues where the previous one ended).
   */
  getRange(prefix: string, limit?: number, after?: string): Promise<Item[]>;
  /** Throws AlreadyExists if the key is present (and not expired). */
  create(item: ItemInput): Promise<Item>;
  /** Creates or replaces. */
  put(item: ItemInput): Promise<Item>;
  /** Throws NotFound if the key is missing. */
  update(item: ItemInput): Promise<Item>;
  /** Replaces only if the stored value equals `expected.value`; throws CompareFailed otherwise (NotFound if missing).
   */
  compareAndSwap(expected: Pick<Item, 'key' | 'value'>, replaceWith: ItemInput): Promise<Item>;
  /** Throws NotFound. */
  delete(key: string): Promise<void>;
  deleteRange(prefix: string): Promise<void>;
  /** Moves the expiry of an existing key (heartbeats). Throws NotFound. */
  keepAlive(key: string, expires: Date): Promise<void>;
  /**
   * Events for keys under any of `prefixes` ('' = all), in commit order, starting with 'init'.
   * A watcher that falls more than the buffer limit behind is closed (its iterator throws
   * LimitExceeded), so a slow consumer costs bounded memory; it re-watches and re-reads.
   */
  watch(prefixes: string[]): Watcher;
  close(): Promise<void>;
  /** 'sqlite' or 'postgres', shown by `wctl status`. */
  readonly kind: string;
}

/** Audit events live beside the resources, in the same database, in their own table (their shape: api/types.ts). */
export type { AuditEvent };

export interface EventQuery {
  from?: Date;
  to?: Date;
  /** Event names, e.g. ['user.login']. */
  types?: string[];
  user?: string;
  sid?: string;
  /** Default 1,000, at most 10,000. */
  limit?: number;
  order?: 'asc' | 'desc';
}

export interface EventStore {
  /** Durable when the promise resolves; throws if it cannot write (callers fail closed). */
  append(events: AuditEvent[]): Promise<void>;
  search(query: EventQuery): Promise<AuditEvent[]>;
}
