// How a client reads listing pages: packed (one JSON array) from this build's servers, one message per resource
// from a server that predates packing, and every resource checked whichever way it came.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthClient } from './client.ts';
import { BadParameter } from './errors.ts';
import { listAllResources, MAX_LIST_PAGE } from './list.ts';

const node = (name: string) => ({
  kind: 'node',
  version: 'v1',
  metadata: { name },
  spec: { hostname: name, addr: '10.0.0.1:3022', tunnel: false, version: '1' },
});

/** A client whose ListResources answers with the given pages, in turn (the Auth API's own answers are api.test.ts's).
 */
function answering(
  pages: Array<{ resources?: Array<{ json: string }>; packedJson?: string; nextKey?: string }>,
): AuthClient & { asked: unknown[] } {
  const asked: unknown[] = [];
  return {
    asked,
    listResources: async (req: unknown) => {
      asked.push(req);
      const page = pages.shift()!;
      return { resources: page.resources ?? [], packedJson: page.packedJson ?? '', nextKey: page.nextKey ?? '' };
    },
  } as unknown as AuthClient & { asked: unknown[] };
}

describe('listing every resource of a kind', () => {
  it('asks for packed pages and reads them, page after page', async () => {
    const client = answering([
      { packedJson: JSON.stringify([node('a'), node('b')]), nextKey: 'b' },
      { packedJson: JSON.stringify([node('c')]) },
    ]);
    const nodes = await listAllResources(client, 'node');
    assert.deepEqual(
      nodes.map((n) => n.metadata.name),
      ['a', 'b', 'c'],
    );
    assert.deepEqual(
      client.asked.map((r) => r as { packed: boolean; startAfter: string }),
      [
        { kind: 'node', limit: MAX_LIST_PAGE, startAfter: '', packed: true },
        { kind: 'node', limit: MAX_LIST_PAGE, startAfter: 'b', packed: true },
      ],
    );
  });

  it('asks for no more than `max` in a page', async () => {
    const client = answering([{ packedJson: JSON.stringify([node('a')]), nextKey: 'a' }]);
    assert.deepEqual(
      (await listAllResources(client, 'node', 1)).map((n) => n.metadata.name),
      ['a'],
    );
    assert.deepEqual(client.asked, [{ kind: 'node', limit: 1, startAfter: '', packed: true }]);
  });

  it('reads a server that predates packing, which sends one message per resource', async () => {
    const nodes = await listAllResources(answering([{ resources: [{ json: JSON.stringify(node('old')) }] }]), 'node');
    assert.deepEqual(
      nodes.map((n) => n.metadata.name),
      ['old'],
    );
  });

  it('checks each resource of a packed page against its schema', async () => {
    const bad = { ...node('x'), spec: { hostname: 'x', addr: 22 } };
    await assert.rejects(
      listAllResources(answering([{ packedJson: JSON.stringify([node('a'), bad]) }]), 'node'),
      /addr|invalid/i,
    );
    const role = { kind: 'role', version: 'v1', metadata: { name: 'r' }, spec: { allow: { logins: ['x'] } } };
    await assert.rejects(
      listAllResources(answering([{ packedJson: JSON.stringify([role]) }]), 'node'),
      /node|kind|invalid/i,
    );
  });

  it('refuses a packed page that is not a JSON array, with a clear error', async () => {
    for (const packedJson of ['{"kind":"node"}', '[{"kind":', '"x"']) {
      await assert.rejects(
        listAllResources(answering([{ packedJson }]), 'node'),
        (e) => e instanceof BadParameter && /not valid JSON/.test(e.message),
      );
    }
  });
});
