// The behaviour every Backend + EventStore must show, written once and run against each implementation
// (sqlite.test.ts, postgres.test.ts), as Teleport's backend/test suite is. Expiry uses real time with
// short TTLs, so `open` must return a store whose sweeper runs at least every ~200 ms.

import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AlreadyExists, BadParameter, CompareFailed, LimitExceeded, NotFound } from '../api/errors.ts';
import type { AuditEvent, Backend, BackendEvent, EventStore, Watcher } from './backend.ts';

export type Store = Backend & EventStore;

export interface OpenOptions {
  /** Events a watcher may fall behind before it is closed (small in the overflow test). */
  watchBufferSize?: number;
}

export interface ConformanceOptions {
  /** A second client of the same store as `of`, as another auth server would be. Default: `of` itself. */
  openPeer?: (of: Store) => Promise<Store>;
}

const WAIT_MS = 5_000;
/** Short enough to keep the suite fast, long enough that a loaded machine reads before expiry. */
const TTL_MS = 500;

/** Reads the next event, failing the test instead of hanging if none comes. */
async function next(it: AsyncIterator<BackendEvent>, ms = WAIT_MS): Promise<BackendEvent> {
  const timeout = new AbortController();
  const timer = sleep(ms, undefined, { signal: timeout.signal }).then(() => {
    throw new Error(`no watch event within ${ms} ms`);
  });
  try {
    const r = await Promise.race([it.next(), timer]);
    assert.equal(r.done, false, 'watch ended early');
    return r.value;
  } finally {
    timeout.abort();
    timer.catch(() => {});
  }
}

function describeEvent(ev: BackendEvent): string {
  if (ev.type === 'init') return 'init';
  return ev.type === 'put' ? `put ${ev.item.key}=${ev.item.value}` : `delete ${ev.key}`;
}

async function expectEvents(it: AsyncIterator<BackendEvent>, expected: string[]): Promise<void> {
  const seen: string[] = [];
  for (const _ of expected) seen.push(describeEvent(await next(it)));
  assert.deepEqual(seen, expected);
}

function iterate(w: Watcher): AsyncIterator<BackendEvent> {
  return w[Symbol.asyncIterator]();
}

function later(ms: number): Date {
  return new Date(Date.now() + ms);
}

function auditEvent(minute: number, event: string, fields: Partial<AuditEvent> = {}): AuditEvent {
  const time = new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
  return { event, code: 'WS0000I', time, uid: `uid-${minute}`, ...fields };
}

export function runBackendConformance(
  name: string,
  open: (opts?: OpenOptions) => Promise<Store>,
  cleanup?: () => Promise<void>,
  options: ConformanceOptions = {},
): void {
  async function withStore(fn: (b: Store) => Promise<void>, opts?: OpenOptions): Promise<void> {
    const b = await open(opts);
    try {
      await fn(b);
    } finally {
      await b.close();
    }
  }

  /** A fresh store plus `n` more clients of it (just the one client when the backend has no peers). */
  function withClients(n: number, fn: (clients: [Store, ...Store[]]) => Promise<void>): Promise<void> {
    return withStore(async (b) => {
      const peers = options.openPeer ? await Promise.all(Array.from({ length: n }, () => options.openPeer!(b))) : [];
      try {
        await fn([b, ...peers]);
      } finally {
        await Promise.all(peers.map((p) => p.close()));
      }
    });
  }

  describe(`${name} backend conformance`, () => {
    if (cleanup) after(cleanup);

    describe('items', () => {
      it('creates an item and reads it back with a revision', () =>
        withStore(async (b) => {
          const created = await b.create({ key: '/users/alice', value: '{"a":1}' });
          assert.equal(typeof created.revision, 'string');
          assert.deepEqual(await b.get('/users/alice'), created);
          assert.equal(created.expires, undefined);
          await assert.rejects(b.get('/users/bob'), NotFound);
        }));

      it('refuses to create a key that exists', () =>
        withStore(async (b) => {
          await b.create({ key: '/k', value: 'one' });
          await assert.rejects(b.create({ key: '/k', value: 'two' }), AlreadyExists);
          assert.equal((await b.get('/k')).value, 'one');
        }));

      it('put creates and replaces, with a higher revision on every write', () =>
        withStore(async (b) => {
          const first = await b.put({ key: '/k', value: 'one' });
          const second = await b.put({ key: '/k', value: 'two' });
          const other = await b.put({ key: '/other', value: 'x' });
          assert.ok(BigInt(second.revision) > BigInt(first.revision));
          assert.ok(BigInt(other.revision) > BigInt(second.revision), 'revisions are global, not per key');
          assert.deepEqual(await b.get('/k'), second);
        }));

      it('update replaces an existing item and refuses a missing one', () =>
        withStore(async (b) => {
          await b.create({ key: '/k', value: 'one' });
          const updated = await b.update({ key: '/k', value: 'two', expires: later(60_000) });
          assert.deepEqual(await b.get('/k'), updated);
          await assert.rejects(b.update({ key: '/missing', value: 'x' }), NotFound);
          await assert.rejects(b.get('/missing'), NotFound);
        }));

      it('compareAndSwap replaces only when the stored value matches', () =>
        withStore(async (b) => {
          await b.create({ key: '/k', value: 'one' });
          await assert.rejects(
            b.compareAndSwap({ key: '/k', value: 'nope' }, { key: '/k', value: 'x' }),
            CompareFailed,
          );
          const swapped = await b.compareAndSwap({ key: '/k', value: 'one' }, { key: '/k', value: 'two' });
          assert.deepEqual(await b.get('/k'), swapped);
          await assert.rejects(b.compareAndSwap({ key: '/none', value: 'a' }, { key: '/none', value: 'b' }), NotFound);
        }));

      it('delete removes an item and refuses a missing one', () =>
        withStore(async (b) => {
          await b.put({ key: '/k', value: 'v' });
          await b.delete('/k');
          await assert.rejects(b.get('/k'), NotFound);
          await assert.rejects(b.delete('/k'), NotFound);
        }));

      it('deleteRange removes exactly the keys under the prefix', () =>
        withStore(async (b) => {
          for (const key of ['/a/1', '/a/2', '/a/sub/3', '/ab', '/b/1']) await b.put({ key, value: 'v' });
          await b.deleteRange('/a/');
          assert.deepEqual(
            (await b.getRange('')).map((i) => i.key),
            ['/ab', '/b/1'],
          );
          await b.deleteRange('/nothing/');
        }));

      it('getRange returns the keys under a prefix in key order, up to the limit', () =>
        withStore(async (b) => {
          const keys = ['/n/b', '/n/a', '/n/é', '/n/A', '/n/a/x', '/n/0', '/m', '/o'];
          for (const key of keys) await b.put({ key, value: `v${key}` });
          const all = ['/n/0', '/n/A', '/n/a', '/n/a/x', '/n/b', '/n/é'];
          const items = await b.getRange('/n/');
          assert.deepEqual(
            items.map((i) => i.key),
            all,
          );
          assert.deepEqual(
            items.map((i) => i.value),
            all.map((k) => `v${k}`),
          );
          assert.deepEqual(
            (await b.getRange('/n/', 2)).map((i) => i.key),
            all.slice(0, 2),
          );
          assert.equal((await b.getRange('')).length, keys.length);
          await assert.rejects(b.getRange('/n/', 0), BadParameter);
          // Pages: each continues after the last key of the one before, and never leaves the prefix.
          assert.deepEqual(
            (await b.getRange('/n/', 2, '/n/A')).map((i) => i.key),
            ['/n/a', '/n/a/x'],
          );
          assert.deepEqual(
            (await b.getRange('/n/', 10, '/n/b')).map((i) => i.key),
            ['/n/é'],
          );
          assert.deepEqual(
            (await b.getRange('/n/', 10, '/n/é')).map((i) => i.key),
            [],
          );
          assert.deepEqual(
            (await b.getRange('/n/', 10, '/m')).map((i) => i.key),
            all,
          );
        }));

      it('treats SQL wildcard characters in a prefix literally', () =>
        withStore(async (b) => {
          for (const key of ['/p%/1', '/p_/1', '/p*/1', '/p[/1', '/p\\/1', '/pX/1', '/pq/1']) {
            await b.put({ key, value: 'v' });
          }
          for (const p of ['/p%/', '/p_/', '/p*/', '/p[/', '/p\\/']) {
            assert.deepEqual(
              (await b.getRange(p)).map((i) => i.key),
              [`${p}1`],
              p,
            );
          }
          await b.deleteRange('/p_/');
          assert.equal((await b.getRange('/p')).length, 6);
        }));

      it('refuses empty keys', () =>
        withStore(async (b) => {
          await assert.rejects(b.put({ key: '', value: 'v' }), BadParameter);
          await assert.rejects(b.get(''), BadParameter);
        }));
    });

    describe('expiry', () => {
      it('hides an expired item from get and getRange', () =>
        withStore(async (b) => {
          const item = await b.put({ key: '/t/a', value: 'v', expires: later(TTL_MS) });
          assert.equal(item.expires?.getTime(), (await b.get('/t/a')).expires?.getTime());
          await b.put({ key: '/t/gone', value: 'v', expires: new Date(Date.now() - 1_000) });
          await assert.rejects(b.get('/t/gone'), NotFound);
          assert.deepEqual(
            (await b.getRange('/t/')).map((i) => i.key),
            ['/t/a'],
          );
          await sleep(TTL_MS + 100);
          await assert.rejects(b.get('/t/a'), NotFound);
          assert.deepEqual(await b.getRange('/t/'), []);
        }));

      it('treats an expired key as missing: create succeeds, the rest say NotFound', () =>
        withStore(async (b) => {
          const past = () => new Date(Date.now() - 1_000);
          await b.put({ key: '/t/x', value: 'old', expires: past() });
          await assert.rejects(b.update({ key: '/t/x', value: 'v' }), NotFound);
          await assert.rejects(b.compareAndSwap({ key: '/t/x', value: 'old' }, { key: '/t/x', value: 'v' }), NotFound);
          await assert.rejects(b.keepAlive('/t/x', later(60_000)), NotFound);
          await assert.rejects(b.delete('/t/x'), NotFound);
          await b.create({ key: '/t/x', value: 'new' });
          assert.equal((await b.get('/t/x')).value, 'new');
        }));

      it('keepAlive moves the expiry of an existing key', () =>
        withStore(async (b) => {
          await b.put({ key: '/hb/node1', value: 'v', expires: later(TTL_MS) });
          const expires = later(60_000);
          await b.keepAlive('/hb/node1', expires);
          await sleep(TTL_MS + 150);
          const item = await b.get('/hb/node1');
          assert.equal(item.value, 'v');
          assert.equal(item.expires?.getTime(), expires.getTime());
          await assert.rejects(b.keepAlive('/hb/none', expires), NotFound);
        }));

      it('sweeps an expired item and sends its delete event', () =>
        withStore(async (b) => {
          const w = b.watch(['/ttl/']);
          const it = iterate(w);
          await expectEvents(it, ['init']);
          await b.put({ key: '/ttl/a', value: 'v', expires: later(TTL_MS) });
          await expectEvents(it, ['put /ttl/a=v', 'delete /ttl/a']);
          w.close();
        }));
    });

    describe('watch', () => {
      it('starts with init, then sends every change in write order', () =>
        withClients(1, async ([b, peer = b]) => {
          const w = b.watch(['/w/']);
          const it = iterate(w);
          await expectEvents(it, ['init']);
          await peer.create({ key: '/w/a', value: '1' });
          await peer.put({ key: '/w/b', value: '1' });
          await b.update({ key: '/w/a', value: '2' });
          await peer.compareAndSwap({ key: '/w/a', value: '2' }, { key: '/w/a', value: '3' });
          await b.keepAlive('/w/b', later(60_000));
          await peer.delete('/w/a');
          await b.put({ key: '/w/c', value: '1' });
          await peer.deleteRange('/w/');
          await expectEvents(it, [
            'put /w/a=1',
            'put /w/b=1',
            'put /w/a=2',
            'put /w/a=3',
            'put /w/b=1',
            'delete /w/a',
            'put /w/c=1',
            'delete /w/b',
            'delete /w/c',
          ]);
          w.close();
        }));

      it('carries the written item, revision and expiry in put events', () =>
        withStore(async (b) => {
          const it = iterate(b.watch(['/w/']));
          await expectEvents(it, ['init']);
          const written = await b.put({ key: '/w/x', value: 'v', expires: later(60_000) });
          const ev = await next(it);
          assert.deepEqual(ev, { type: 'put', item: written });
          await it.return?.();
        }));

      it('sends only keys under the watched prefixes', () =>
        withStore(async (b) => {
          const w = b.watch(['/a/', '/c/']);
          const it = iterate(w);
          await expectEvents(it, ['init']);
          for (const key of ['/a/1', '/b/1', '/c/1', '/ab', '/a/2']) await b.put({ key, value: 'v' });
          await expectEvents(it, ['put /a/1=v', 'put /c/1=v', 'put /a/2=v']);
          w.close();
          assert.equal((await it.next()).done, true);
        }));

      it('ends the iterator when the watcher or the backend is closed', async () => {
        const b = await open();
        const w1 = b.watch(['']);
        const it1 = iterate(w1);
        await expectEvents(it1, ['init']);
        const pending = it1.next();
        w1.close();
        assert.equal((await pending).done, true);
        const it2 = iterate(b.watch(['']));
        await expectEvents(it2, ['init']);
        const pending2 = it2.next();
        await b.close();
        assert.equal((await pending2).done, true);
      });

      it('closes a watcher that falls behind with LimitExceeded', () =>
        withStore(
          async (b) => {
            const slow = iterate(b.watch(['/s/']));
            const fast = iterate(b.watch(['/s/']));
            await expectEvents(fast, ['init']);
            // In lockstep: the fast watcher reads each event before the next write, so it never holds
            // more than one (a PostgreSQL poll may deliver a whole burst of writes at once); the slow
            // one never reads and is offered all 30.
            for (let i = 0; i < 30; i++) {
              await b.put({ key: `/s/${i}`, value: 'v' });
              await next(fast);
            }
            await assert.rejects(
              (async () => {
                for (;;) if ((await slow.next()).done) return;
              })(),
              LimitExceeded,
            );
            await fast.return?.();
          },
          { watchBufferSize: 20 },
        ));
    });

    describe('concurrency', () => {
      it('10 concurrent compare-and-swap increments from several clients end at exactly 10', () =>
        withClients(2, async (clients) => {
          const [b] = clients;
          await b.put({ key: '/counter', value: '0' });
          let conflicts = 0;
          await Promise.all(
            Array.from({ length: 10 }, async (_, i) => {
              const c = clients[i % clients.length]!;
              for (let attempt = 0; attempt < 1_000; attempt++) {
                const cur = await c.get('/counter');
                try {
                  await c.compareAndSwap(cur, { key: '/counter', value: String(Number(cur.value) + 1) });
                  return;
                } catch (err) {
                  if (!(err instanceof CompareFailed)) throw err;
                  conflicts++;
                }
              }
              throw new Error('increment never succeeded');
            }),
          );
          assert.equal((await b.get('/counter')).value, '10');
          assert.ok(conflicts > 0, 'the increments should have raced');
        }));

      it('delivers every change from concurrent writers to a watcher, in each key’s write order', () =>
        withClients(2, async (clients) => {
          const [b] = clients;
          const it = iterate(b.watch(['/cw/']));
          await expectEvents(it, ['init']);
          const writers = 6;
          const writes = 40;
          await Promise.all(
            Array.from({ length: writers }, async (_, w) => {
              for (let i = 1; i <= writes; i++)
                await clients[w % clients.length]!.put({ key: `/cw/${w}`, value: `${i}` });
            }),
          );
          const lastSeen = new Map<string, number>();
          let lastRevision = 0n;
          for (let n = 0; n < writers * writes; n++) {
            const ev = await next(it);
            assert.equal(ev.type, 'put');
            if (ev.type !== 'put') return;
            const value = Number(ev.item.value);
            assert.equal(value, (lastSeen.get(ev.item.key) ?? 0) + 1, `${ev.item.key} skipped or repeated a write`);
            assert.ok(BigInt(ev.item.revision) > lastRevision, 'events arrive in commit (revision) order');
            lastRevision = BigInt(ev.item.revision);
            lastSeen.set(ev.item.key, value);
          }
          await it.return?.();
        }));

      it('lets exactly one of several concurrent creates of a key win', () =>
        withClients(2, async (clients) => {
          const results = await Promise.allSettled(
            Array.from({ length: 8 }, (_, i) => clients[i % clients.length]!.create({ key: '/lock', value: `${i}` })),
          );
          assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
          for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof AlreadyExists);
        }));
    });

    describe('audit events', () => {
      const events = [
        auditEvent(0, 'user.login', { user: 'alice' }),
        auditEvent(1, 'session.start', { user: 'alice', sid: 's1', login: 'root' }),
        auditEvent(2, 'session.end', { user: 'alice', sid: 's1' }),
        auditEvent(3, 'user.login', { user: 'bob' }),
        auditEvent(4, 'session.start', { user: 'bob', sid: 's2', server_id: 'n1' }),
      ];

      it('finds appended events by time range, type, user and session', () =>
        withStore(async (b) => {
          await b.append(events);
          await b.append([]);
          const uids = async (q: Parameters<EventStore['search']>[0]) => (await b.search(q)).map((e) => e.uid);
          assert.deepEqual(await b.search({}), events);
          const from = new Date(events[1]!.time);
          const to = new Date(events[3]!.time);
          assert.deepEqual(await uids({ from, to }), ['uid-1', 'uid-2'], 'from inclusive, to exclusive');
          assert.deepEqual(await uids({ types: ['user.login'] }), ['uid-0', 'uid-3']);
          assert.deepEqual(await uids({ types: ['session.start', 'session.end'], user: 'alice' }), ['uid-1', 'uid-2']);
          assert.deepEqual(await uids({ user: 'bob' }), ['uid-3', 'uid-4']);
          assert.deepEqual(await uids({ sid: 's1' }), ['uid-1', 'uid-2']);
          assert.deepEqual(await uids({ user: 'carol' }), []);
        }));

      it('orders and limits results', () =>
        withStore(async (b) => {
          await b.append(events);
          const uids = async (q: Parameters<EventStore['search']>[0]) => (await b.search(q)).map((e) => e.uid);
          assert.deepEqual(await uids({ order: 'desc', limit: 2 }), ['uid-4', 'uid-3']);
          assert.deepEqual(await uids({ order: 'asc', limit: 2 }), ['uid-0', 'uid-1']);
          assert.deepEqual(await uids({ order: 'desc', types: ['user.login'], limit: 1 }), ['uid-3']);
          await assert.rejects(b.search({ limit: 0 }), BadParameter);
        }));

      it('refuses events without a valid time, writing none of the batch', () =>
        withStore(async (b) => {
          await assert.rejects(b.append([events[0]!, { ...events[1]!, time: 'yesterday' }]), BadParameter);
          assert.deepEqual(await b.search({}), []);
        }));
    });
  });
}
