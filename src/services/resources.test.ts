// ResourceService paging: a listing in pages (as wsh ls and the caches read 10,000 nodes) returns every
// resource once, in name order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SqliteBackend } from '../backend/sqlite.ts';
import { ResourceService } from './resources.ts';

describe('ResourceService', () => {
  it('lists every resource once across pages', async () => {
    const backend = SqliteBackend.open({ path: ':memory:' });
    try {
      const nodes = new ResourceService(backend, 'node');
      const names = Array.from({ length: 12 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
      for (const name of [...names].reverse()) {
        await nodes.create({ kind: 'node', version: 'v1', metadata: { name }, spec: { hostname: name, addr: '', tunnel: true, version: 'test' } });
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
    } finally {
      await backend.close();
    }
  });

  it('passes stored documents to clients as list() reads them, and fully checks any without a name and string labels', async () => {
    const backend = SqliteBackend.open({ path: ':memory:' });
    try {
      const nodes = new ResourceService(backend, 'node');
      await nodes.create({ kind: 'node', version: 'v1', metadata: { name: 'a', labels: { env: 'prod' } }, spec: { hostname: 'a', addr: '', tunnel: true, version: 'test' } });
      assert.deepEqual(await nodes.listForClient(), await nodes.list());
      // A document that reached the backend without the shape access checks read is refused as list() refuses it.
      const key = `${ResourceService.prefix('node')}b`;
      await backend.put({ key, value: JSON.stringify({ kind: 'node', version: 'v1', metadata: { name: 'b', labels: { env: ['prod'] } }, spec: {} }) });
      await assert.rejects(nodes.listForClient(), /invalid|expected/i);
      await assert.rejects(nodes.list(), /invalid|expected/i);
    } finally {
      await backend.close();
    }
  });
});
