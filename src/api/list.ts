// Every resource of a kind that the caller may list, page by page: the Auth API answers a listing in
// pages (ListResources' limit and next_key), and each resource is checked against its schema on arrival.
import type { AuthClient } from './client.ts';
import { fastListedNode } from './listednode.ts';
import { parseAs, type Kind, type Resource } from './types.ts';

// The Auth API's largest page: 10,000 nodes come in one or two calls rather than two or three.
const PAGE = 10_000;

export async function listAllResources<K extends Kind>(auth: AuthClient, kind: K, max = Infinity): Promise<Array<Extract<Resource, { kind: K }>>> {
  const out: Array<Extract<Resource, { kind: K }>> = [];
  let startAfter = '';
  do {
    const page = await auth.listResources({ kind, limit: PAGE, startAfter });
    for (const r of page.resources) {
      const data: unknown = JSON.parse(r.json);
      out.push(((kind === 'node' && fastListedNode(data)) || parseAs(kind, data)) as Extract<Resource, { kind: K }>);
    }
    startAfter = page.nextKey;
  } while (startAfter && out.length < max);
  return out;
}
