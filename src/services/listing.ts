// What a listing sends for each stored resource, kept per (key, revision) by the auth server: a resource
// whose revision has not changed is neither parsed nor serialised again. Why: listing 10,000 nodes parsed
// and re-serialised every document on every call, ~20 ms of its ~65 ms of server CPU plus the garbage (a CPU
// profile of the auth server answering that listing). A backend revision names one write (SQLite's counter,
// PostgreSQL's sequence), so an entry never goes stale: a changed resource has a new revision and is read
// afresh. Entries are shared between calls: read-only.
import type { Item } from '../backend/backend.ts';
import type { Resource } from '../api/types.ts';

export interface Listed<R extends Resource = Resource> {
  resource: R;
  /** The resource as the client receives it (the API's presentation, e.g. CA private keys removed). */
  json: string;
}

export class ListingCache {
  private entries = new Map<string, { revision: string; listed: Listed }>();

  constructor(
    private readonly present: (resource: Resource) => string,
    /** Bounded: past this many entries the cache starts over (deleted resources' entries go with it). */
    private readonly maxEntries = 50_000,
  ) {}

  listed<R extends Resource>(item: Item, parse: (item: Item) => R): Listed<R> {
    const hit = this.entries.get(item.key);
    if (hit?.revision === item.revision) return hit.listed as Listed<R>;
    const resource = parse(item);
    const listed = { resource, json: this.present(resource) };
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(item.key, { revision: item.revision, listed });
    return listed;
  }
}
