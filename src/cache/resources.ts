// The in-memory copy of cluster resources that proxies and agents read from (never a backend read per
// connection). Fed by the Auth API's Watch: on every (re)connect it waits for 'init', lists each kind,
// then applies events. While auth is unreachable it keeps serving the last good copy, and says how
// stale it is: `staleSince()` is set from the moment the watch broke until it has re-synced. Bounded
// staleness: once the copy has been stale for longer than `maxStaleMs` (default MAX_STALENESS_MS),
// get() and list() throw ConnectionProblem, so access decisions fail closed rather than rest on a view
// of users, roles and locks that may be arbitrarily old. listAnyAge() is for what must go on anyway
// (which proxies to keep a tunnel to).
import type { Logger } from 'pino';
import { fromRPCError, type AuthClient } from '../api/client.ts';
import { ConnectionProblem } from '../api/errors.ts';
import { listAllResources } from '../api/list.ts';
import { parseResource, type Kind, type Resource } from '../api/types.ts';

export interface CacheOptions {
  kinds: Kind[];
  log: Logger;
  /** Reconnect backoff, with full jitter. */
  backoff?: { minMs: number; maxMs: number };
  /** How long a broken watch may leave the copy in use before reads fail (default MAX_STALENESS_MS). */
  maxStaleMs?: number;
}

/**
 * The staleness bound. With several auth servers a broken watch re-syncs through another within seconds,
 * so this is reached only when no auth server has answered for this long; then proxies route nobody and
 * nodes admit nobody until the copy is current again. Long enough to ride out an auth restart or a
 * database failover, short enough that a deleted user or a new lock cannot be ignored for long.
 */
export const MAX_STALENESS_MS = 5 * 60_000;

export class ResourceCache {
  private readonly data = new Map<Kind, Map<string, Resource>>();
  private abort = new AbortController();
  private synced = false;
  private stale: Date | undefined = new Date();
  private readyWaiters: Array<() => void> = [];
  private closed = false;
  private readonly listeners: Array<(kind: Kind) => void> = [];

  constructor(
    private readonly auth: AuthClient,
    private readonly opts: CacheOptions,
  ) {
    for (const k of opts.kinds) this.data.set(k, new Map());
  }

  start(): this {
    void this.run();
    return this;
  }

  /** Resolves once the first full sync is done (bounded by `timeoutMs`). */
  ready(timeoutMs = 15_000): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the cache did not sync with the auth server in time')),
        timeoutMs,
      );
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get<K extends Kind>(kind: K, name: string): Extract<Resource, { kind: K }> | undefined {
    this.checkFresh();
    return this.data.get(kind)?.get(name) as Extract<Resource, { kind: K }> | undefined;
  }

  list<K extends Kind>(kind: K): Array<Extract<Resource, { kind: K }>> {
    this.checkFresh();
    return this.listAnyAge(kind);
  }

  /** The cached items however old they are: only for decisions that grant nothing (where to dial). */
  listAnyAge<K extends Kind>(kind: K): Array<Extract<Resource, { kind: K }>> {
    return [...(this.data.get(kind)?.values() ?? [])] as Array<Extract<Resource, { kind: K }>>;
  }

  /** Throws once the copy has been stale for longer than the bound (see MAX_STALENESS_MS). */
  checkFresh(now = Date.now()): void {
    const since = this.stale;
    if (!since || !this.synced) return;
    const bound = this.opts.maxStaleMs ?? MAX_STALENESS_MS;
    if (now - since.getTime() > bound) {
      throw new ConnectionProblem(
        `no auth server has answered for ${Math.round((now - since.getTime()) / 1000)} s; cached cluster state ` +
          `is too old to use`,
      );
    }
  }

  /** Calls `fn` after a resource of `kind` changed, and for every kind after each (re)sync. */
  onChange(fn: (kind: Kind) => void): void {
    this.listeners.push(fn);
  }

  private changed(kind: Kind): void {
    for (const fn of this.listeners) {
      try {
        fn(kind);
      } catch (err) {
        this.opts.log.error({ err, kind }, 'cache listener failed');
      }
    }
  }

  /** When the copy stopped being current (watch broken), or undefined while it is live. */
  staleSince(): Date | undefined {
    return this.stale;
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
  }

  private async run(): Promise<void> {
    const { minMs, maxMs } = this.opts.backoff ?? { minMs: 200, maxMs: 10_000 };
    let failures = 0;
    while (!this.closed) {
      try {
        await this.watchOnce();
        // The server ended the stream (it is shutting down): the copy is no longer being kept current.
        if (this.synced) this.stale ??= new Date();
        failures = 0;
      } catch (err) {
        if (this.closed) return;
        if (this.synced) this.stale ??= new Date();
        failures++;
        this.opts.log.warn(
          { err: fromRPCError(err).message },
          'resource watch broken; serving cached data and retrying',
        );
      }
      const delay = Math.random() * Math.min(maxMs, minMs * 2 ** Math.min(failures, 16));
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private async watchOnce(): Promise<void> {
    this.abort = new AbortController();
    const stream = this.auth.watch({ kinds: this.opts.kinds }, { signal: this.abort.signal, timeoutMs: 0 });
    const pending: Array<{ type: string; kind: string; name: string; json?: string }> = [];
    let loaded = false;
    for await (const event of stream) {
      if (event.type === 'init') {
        // Subscribed: whatever changes from now on arrives as an event, so a full list now misses nothing.
        const fresh = new Map<Kind, Map<string, Resource>>();
        for (const kind of this.opts.kinds) fresh.set(kind, await this.listAll(kind));
        for (const [kind, items] of fresh) this.data.set(kind, items);
        for (const e of pending.splice(0)) this.apply(e);
        loaded = true;
        this.markSynced();
        for (const kind of this.opts.kinds) this.changed(kind);
        continue;
      }
      const e = { type: event.type, kind: event.kind, name: event.name, json: event.resource?.json };
      if (loaded) this.apply(e);
      else pending.push(e);
    }
  }

  private async listAll(kind: Kind): Promise<Map<string, Resource>> {
    return new Map((await listAllResources(this.auth, kind)).map((r) => [r.metadata.name, r]));
  }

  private apply(e: { type: string; kind: string; name: string; json?: string }): void {
    const items = this.data.get(e.kind as Kind);
    if (!items) return;
    if (e.type === 'delete') items.delete(e.name);
    else if (e.type === 'put' && e.json) items.set(e.name, parseResource(JSON.parse(e.json)));
    this.changed(e.kind as Kind);
  }

  private markSynced(): void {
    this.stale = undefined;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.readyWaiters.splice(0)) w();
    }
  }
}
