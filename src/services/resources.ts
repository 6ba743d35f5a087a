// One generic store for every resource kind (Teleport's generic.Service): users, roles, tokens, nodes
// and CAs are thin instances of it. Resources are stored as versioned JSON under '/<kind>/<name>';
// the backend revision is reported in metadata.revision and checked on update.
import type { Backend, Item, ItemInput } from '../backend/backend.ts';
import { AlreadyExists, CompareFailed, NotFound } from '../api/errors.ts';
import { parseAs, type Kind, type resourceSchemas } from '../api/types.ts';
import type { z } from 'zod';
import type { ListingCache, Listed } from './listing.ts';

export type ResourceOf<K extends Kind> = z.infer<(typeof resourceSchemas)[K]>;

export class ResourceService<K extends Kind> {
  /** What getShared decoded, per name, with the stored bytes and revision it was decoded from. */
  private readonly shared = new Map<string, { revision: string; value: string; resource: ResourceOf<K> }>();

  constructor(
    private readonly backend: Backend,
    readonly kind: K,
  ) {}

  static prefix(kind: Kind): string {
    return `/${kind}/`;
  }

  private key(name: string): string {
    return `${ResourceService.prefix(this.kind)}${name}`;
  }

  /** Parses a stored item; the backend is trusted but its data is still checked against the schema. */
  decode(item: Item): ResourceOf<K> {
    const resource = parseAs(this.kind, JSON.parse(item.value)) as ResourceOf<K>;
    resource.metadata.revision = item.revision;
    return resource;
  }

  /**
   * The item to store, and the resource as it will read back, checked against the schema before anything is
   * written: one bad document stored (a user named "bad name!") made every later listing of its kind fail.
   */
  private encode(resource: ResourceOf<K>): { item: ItemInput; checked: ResourceOf<K> } {
    const { revision: _, ...metadata } = resource.metadata;
    const value = JSON.stringify({ ...resource, metadata });
    const checked = parseAs(this.kind, JSON.parse(value)) as ResourceOf<K>;
    const expires = metadata.expires ? new Date(metadata.expires) : undefined;
    return { item: { key: this.key(metadata.name), value, expires }, checked };
  }

  /** What a write returns: the checked resource, with the revision the backend gave it. */
  private written(checked: ResourceOf<K>, item: Item): ResourceOf<K> {
    checked.metadata.revision = item.revision;
    return checked;
  }

  async get(name: string): Promise<ResourceOf<K>> {
    try {
      return this.decode(await this.backend.get(this.key(name)));
    } catch (err) {
      if (err instanceof NotFound) throw new NotFound(`${this.kind} "${name}" not found`);
      throw err;
    }
  }

  async tryGet(name: string): Promise<ResourceOf<K> | undefined> {
    return this.get(name).catch((err) => {
      if (err instanceof NotFound) return undefined;
      throw err;
    });
  }

  /**
   * get() for the paths every certificate issuance and API call takes (the user, their roles, the CAs): the
   * stored document is read from the backend on every call, so a change or a delete is seen by the very next
   * call, but it is parsed and schema-checked only when its stored bytes or revision differ from those decoded
   * last time (decoding is a pure function of both, so a hit can never be stale). The object is shared between
   * callers and frozen: writing to it throws. Why: JSON.parse and the zod check of the user, one role and three
   * CAs were ~17 us of the ~200 us of CPU of each issuance (get() against backend.get() in a loop), plus their
   * garbage, on every GenerateUserCerts; the backend read itself is ~4 us.
   */
  async getShared(name: string): Promise<ResourceOf<K>> {
    let item: Item;
    try {
      item = await this.backend.get(this.key(name));
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      this.shared.delete(name);
      throw new NotFound(`${this.kind} "${name}" not found`);
    }
    return this.decodeShared(name, item);
  }

  async tryGetShared(name: string): Promise<ResourceOf<K> | undefined> {
    return this.getShared(name).catch((err) => {
      if (err instanceof NotFound) return undefined;
      throw err;
    });
  }

  /** list() (first 10,000) with getShared's reuse: every resource is read, only changed ones are decoded. */
  async listShared(): Promise<ResourceOf<K>[]> {
    const prefix = ResourceService.prefix(this.kind);
    const items = await this.backend.getRange(prefix);
    return items.map((item) => this.decodeShared(item.key.slice(prefix.length), item));
  }

  private decodeShared(name: string, item: Item): ResourceOf<K> {
    const hit = this.shared.get(name);
    if (hit && hit.revision === item.revision && hit.value === item.value) return hit.resource;
    const resource = deepFreeze(this.decode(item));
    if (this.shared.size >= MAX_SHARED) this.shared.clear();
    this.shared.set(name, { revision: item.revision, value: item.value, resource });
    return resource;
  }

  /** Sorted by name; `startAfter` pages through large sets. */
  async list(opts: { limit?: number; startAfter?: string } = {}): Promise<ResourceOf<K>[]> {
    const limit = opts.limit ?? 10_000;
    // A page starts in the backend after the given name, so each page costs its own size however deep the
    // listing is, and a page never comes back short while more items follow (which a client takes as the end).
    const items = await this.backend.getRange(
      ResourceService.prefix(this.kind),
      limit,
      opts.startAfter ? this.key(opts.startAfter) : undefined,
    );
    return items.map((i) => this.decode(i));
  }

  /**
   * A page as list() reads it, for passing on to a client, with each resource as the client receives it
   * (from `cache` while its revision is unchanged). A stored document is parsed but not checked against the
   * schema, because the client checks every resource on arrival (api/list.ts) and the write that stored it
   * was checked. Why: for 10,000 nodes the check was ~30 ms of the ~50 ms list() takes. What callers read to
   * decide access (the name and labels) is checked here, and a document without that shape goes through the
   * full check, which refuses it as list() would.
   */
  async listForClient(
    opts: { limit?: number; startAfter?: string },
    cache: ListingCache,
  ): Promise<Listed<ResourceOf<K>>[]> {
    const limit = opts.limit ?? 10_000;
    const items = await this.backend.getRange(
      ResourceService.prefix(this.kind),
      limit,
      opts.startAfter ? this.key(opts.startAfter) : undefined,
    );
    return items.map((item) => cache.listed(item, (i) => this.decodeForClient(i)));
  }

  /**
   * A stored item for a client that checks every resource on arrival (listings above; watch streams, whose only
   * reader is cache/resources.ts): parsed, with the access shape checked, but not the whole schema, which the
   * write that stored it already passed. CAs always go through the full decode (their secrets are stripped later).
   */
  decodeForClient(item: Item): ResourceOf<K> {
    const doc = JSON.parse(item.value) as ResourceOf<K> | null;
    if (!hasAccessShape(doc) || doc.kind !== this.kind || this.kind === 'cert_authority') return this.decode(item);
    doc.metadata.revision = item.revision;
    return doc;
  }

  async create(resource: ResourceOf<K>): Promise<ResourceOf<K>> {
    const encoded = this.encode(resource);
    try {
      return this.written(encoded.checked, await this.backend.create(encoded.item));
    } catch (err) {
      if (err instanceof AlreadyExists)
        throw new AlreadyExists(`${this.kind} "${resource.metadata.name}" already exists`);
      throw err;
    }
  }

  async upsert(resource: ResourceOf<K>): Promise<ResourceOf<K>> {
    const encoded = this.encode(resource);
    return this.written(encoded.checked, await this.backend.put(encoded.item));
  }

  /**
   * Read-modify-write with compare-and-swap, retried on a lost race: concurrent updates from several
   * auth servers never overwrite each other.
   */
  async modify(name: string, change: (current: ResourceOf<K>) => ResourceOf<K>): Promise<ResourceOf<K>> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const item = await this.backend.get(this.key(name)).catch((err) => {
        if (err instanceof NotFound) throw new NotFound(`${this.kind} "${name}" not found`);
        throw err;
      });
      const next = this.encode(change(this.decode(item)));
      try {
        return this.written(next.checked, await this.backend.compareAndSwap(item, next.item));
      } catch (err) {
        if (!(err instanceof CompareFailed)) throw err;
      }
    }
    throw new CompareFailed(`${this.kind} "${name}" is being changed concurrently, try again`);
  }

  async delete(name: string): Promise<void> {
    try {
      await this.backend.delete(this.key(name));
    } catch (err) {
      if (err instanceof NotFound) throw new NotFound(`${this.kind} "${name}" not found`);
      throw err;
    }
  }
}

/** Entries getShared keeps per kind; past this many it starts over (deleted resources' entries go with it). */
const MAX_SHARED = 10_000;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The fields access decisions read: a string name and string labels. */
function hasAccessShape(
  doc: unknown,
): doc is { kind: string; metadata: { name: string; labels?: Record<string, string>; revision?: string } } {
  if (typeof doc !== 'object' || doc === null) return false;
  const { kind, metadata } = doc as { kind?: unknown; metadata?: unknown };
  if (typeof kind !== 'string' || typeof metadata !== 'object' || metadata === null) return false;
  const { name, labels } = metadata as { name?: unknown; labels?: unknown };
  if (typeof name !== 'string') return false;
  if (labels === undefined) return true;
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return false;
  return Object.values(labels).every((v) => typeof v === 'string');
}
