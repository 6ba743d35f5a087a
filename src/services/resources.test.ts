// ResourceService paging: a listing in pages (as wsh ls and the caches read 10,000 nodes) returns every
// resource once, in name order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SqliteBackend } from '../backend/sqlite.ts';
import { ListingCache } from './listing.ts';
import { ResourceService } from './resources.ts';

/** Runs `fn` against a fresh in-memory backend, closed afterwards whatever happens. */
async function withBackend(fn: (backend: SqliteBackend) => Promise<void>): Promise<void> {
  const backend = SqliteBackend.open({ path: ':memory:' });
  try {
    await fn(backend);
  } finally {
    await backend.close();
  }
}

describe('ResourceService', () => {
  it('lists every resource once across pages', () =>
    withBackend(async (backend) => {
      const nodes = new ResourceService(backend, 'node');
      const names = Array.from({ length: 12 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
      for (const name of [...names].reverse()) {
        await nodes.create({
          kind: 'node',
          version: 'v1',
          metadata: { name },
          spec: { hostname: name, addr: '', tunnel: true, version: 'test' },
        });
      }
      const seen: string[] = [];
      let startAfter: string | undefined;
      for (let page = 0; page < 10; page++) {
        const items = await nodes.list({ limit: 5, startAfter });
        seen.push(...items.map((n) => n.metadata.name));
        if (items.length < 5) break;
        startAfter = items.at(-1)!.metadata.name;
      }
      assert.deepEqual(seen, names);
    }));

  it(
    'refuses an invalid document on create, ' +
      'upsert and modify before writing it, so listings of its kind still work',
    () =>
      withBackend(async (backend) => {
        const users = new ResourceService(backend, 'user');
        const user = (name: string) => ({
          kind: 'user' as const,
          version: 'v1' as const,
          metadata: { name },
          spec: { roles: ['access'], traits: { logins: [] } },
        });
        const created = await users.create(user('alice'));
        assert.equal(
          created.metadata.revision,
          (await users.get('alice')).metadata.revision,
          'a write returns what reads back',
        );
        await assert.rejects(users.create(user('bad name!')), /invalid user: metadata\.name/);
        await assert.rejects(users.upsert(user('bad/name')), /invalid user: metadata\.name/);
        await assert.rejects(
          users.modify('alice', (u) => ({ ...u, spec: { ...u.spec, roles: 'access' as unknown as string[] } })),
          /invalid user: spec\.roles/,
        );
        assert.deepEqual(
          (await backend.getRange(ResourceService.prefix('user'))).map((i) => i.key),
          ['/user/alice'],
        );
        assert.deepEqual(
          (await users.list()).map((u) => [u.metadata.name, u.spec.roles]),
          [['alice', ['access']]],
        );
      }),
  );

  it(
    'passes stored documents to clients as list() reads them, ' +
      'and fully checks any without a name and string labels',
    () =>
      withBackend(async (backend) => {
        const nodes = new ResourceService(backend, 'node');
        const cache = new ListingCache((r) => JSON.stringify(r));
        await nodes.create({
          kind: 'node',
          version: 'v1',
          metadata: { name: 'a', labels: { env: 'prod' } },
          spec: { hostname: 'a', addr: '', tunnel: true, version: 'test' },
        });
        const listed = await nodes.listForClient({}, cache);
        assert.deepEqual(
          listed.map((l) => l.resource),
          await nodes.list(),
        );
        assert.deepEqual(
          listed.map((l) => JSON.parse(l.json)),
          await nodes.list(),
        );
        // A document that reached the backend without the shape access checks read is refused as list() refuses it.
        const key = `${ResourceService.prefix('node')}b`;
        await backend.put({
          key,
          value: JSON.stringify({
            kind: 'node',
            version: 'v1',
            metadata: { name: 'b', labels: { env: ['prod'] } },
            spec: {},
          }),
        });
        await assert.rejects(nodes.listForClient({}, cache), /invalid|expected/i);
        await assert.rejects(nodes.list(), /invalid|expected/i);
      }),
  );

  it('serves a listed resource from the cache until its revision changes, within a bounded number of entries', () =>
    withBackend(async (backend) => {
      const nodes = new ResourceService(backend, 'node');
      let presented = 0;
      const cache = new ListingCache((r) => (presented++, JSON.stringify(r)), 3);
      const node = (name: string, addr: string) => ({
        kind: 'node' as const,
        version: 'v1' as const,
        metadata: { name },
        spec: { hostname: name, addr, tunnel: false, version: 'test' },
      });
      await nodes.create(node('a', '10.0.0.1:3022'));
      await nodes.create(node('b', '10.0.0.2:3022'));
      const first = await nodes.listForClient({}, cache);
      assert.equal(presented, 2);
      assert.deepEqual(await nodes.listForClient({}, cache), first);
      assert.equal(presented, 2);
      await nodes.upsert(node('a', '10.0.0.9:3022'));
      const second = await nodes.listForClient({}, cache);
      assert.equal(presented, 3);
      assert.equal(second[0]!.resource.spec.addr, '10.0.0.9:3022');
      assert.equal(JSON.parse(second[0]!.json).metadata.revision, second[0]!.resource.metadata.revision);
      assert.notEqual(second[0]!.resource.metadata.revision, first[0]!.resource.metadata.revision);
      // Two more nodes take it past its 3 entries: it starts over, and still answers correctly.
      await nodes.create(node('c', '10.0.0.3:3022'));
      await nodes.create(node('d', '10.0.0.4:3022'));
      const third = await nodes.listForClient({}, cache);
      assert.deepEqual(
        third.map((l) => l.resource),
        await nodes.list(),
      );
    }));

  it(
    'decodes a shared read once per stored version, ' + 'and sees an edit, a delete or a re-creation on the next read',
    () =>
      withBackend(async (backend) => {
        const roles = new ResourceService(backend, 'role');
        const role = (logins: string[]) => ({
          kind: 'role' as const,
          version: 'v1' as const,
          metadata: { name: 'dev' },
          spec: { allow: { logins } },
        });
        await roles.create(role(['a']));
        const first = await roles.getShared('dev');
        assert.equal(await roles.getShared('dev'), first, 'an unchanged document is not decoded again');
        assert.deepEqual(first, await roles.get('dev'));
        await roles.upsert(role(['b']));
        const edited = await roles.getShared('dev');
        assert.deepEqual(edited.spec.allow?.logins, ['b']);
        assert.deepEqual(first.spec.allow?.logins, ['a'], 'what an earlier call holds does not change under it');
        // A write that bypasses the service (another auth server, a restore) is seen too.
        await backend.put({ key: '/role/dev', value: JSON.stringify(role(['c'])) });
        assert.deepEqual((await roles.getShared('dev')).spec.allow?.logins, ['c']);
        await roles.delete('dev');
        assert.equal(await roles.tryGetShared('dev'), undefined);
        await assert.rejects(roles.getShared('dev'), /role "dev" not found/);
        await roles.create(role(['c']));
        const recreated = await roles.getShared('dev');
        assert.notEqual(recreated, edited);
        assert.equal(recreated.metadata.revision, (await roles.get('dev')).metadata.revision);
        // A stored document that no longer passes the schema is refused, as get() refuses it.
        await backend.put({
          key: '/role/dev',
          value: JSON.stringify({ ...role(['c']), spec: { allow: { logins: 'root' } } }),
        });
        await assert.rejects(roles.getShared('dev'), /invalid role/);
      }),
  );

  it('lists shared reads as list() reads them, with added, edited and deleted resources seen at once', () =>
    withBackend(async (backend) => {
      const locks = new ResourceService(backend, 'lock');
      const lock = (name: string, user: string) => ({
        kind: 'lock' as const,
        version: 'v1' as const,
        metadata: { name },
        spec: { target: { user } },
      });
      assert.deepEqual(await locks.listShared(), []);
      await locks.create(lock('a', 'alice'));
      await locks.create(lock('b', 'bob'));
      const first = await locks.listShared();
      assert.deepEqual(first, await locks.list());
      await locks.upsert(lock('b', 'carol'));
      await locks.create(lock('c', 'dave'));
      const second = await locks.listShared();
      assert.equal(second[0], first[0], 'an unchanged lock is not decoded again');
      assert.deepEqual(
        second.map((l) => l.spec.target.user),
        ['alice', 'carol', 'dave'],
      );
      await locks.delete('a');
      assert.deepEqual(
        (await locks.listShared()).map((l) => l.metadata.name),
        ['b', 'c'],
      );
      assert.deepEqual(await locks.listShared(), await locks.list());
    }));

  it('hands out shared reads frozen, so no caller can change what the next one reads', () =>
    withBackend(async (backend) => {
      const roles = new ResourceService(backend, 'role');
      await roles.create({
        kind: 'role',
        version: 'v1',
        metadata: { name: 'dev' },
        spec: { allow: { logins: ['a'] } },
      });
      const shared = await roles.getShared('dev');
      assert.throws(() => shared.spec.allow!.logins!.push('root'), TypeError);
      assert.throws(() => ((shared.metadata as { name: string }).name = 'admin'), TypeError);
      assert.deepEqual((await roles.getShared('dev')).spec.allow?.logins, ['a']);
      (await roles.get('dev')).spec.allow!.logins!.push('root'); // get() still returns a private copy
    }));
});
