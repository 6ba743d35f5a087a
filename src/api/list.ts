// Every resource of a kind that the caller may list, page by page: the Auth API answers a listing in
// pages (ListResources' limit and next_key), and each resource is checked against its schema on arrival.
import type { AuthClient } from './client.ts';
import { BadParameter } from './errors.ts';
import { fastListedNode } from './listednode.ts';
import type { Kind, Resource } from './types.ts';

/**
 * The Auth API's largest listing page, which clients ask for: a cluster of 10,000 nodes and a few more is one
 * call, not two (a second round trip for the last few was 10-30 ms of `wsh ls` under 10,000 agents). A packed
 * page of 20,000 nodes is ~5 MB of JSON, ~0.8 MB gzipped.
 */
export const MAX_LIST_PAGE = 20_000;

/**
 * A page's resources, not yet checked. Asked for packed (one JSON array: one parse instead of one per resource,
 * and one protobuf string instead of 10,000 messages); a server that predates packing sends them one by one.
 */
function pageItems(page: { resources: Array<{ json: string }>; packedJson: string }): unknown[] {
  try {
    if (!page.packedJson) return page.resources.map((r) => JSON.parse(r.json) as unknown);
    const items: unknown = JSON.parse(page.packedJson);
    if (Array.isArray(items)) return items;
  } catch {
    // said below
  }
  throw new BadParameter('the auth server sent a listing that is not valid JSON');
}

export async function listAllResources<K extends Kind>(
  auth: AuthClient,
  kind: K,
  max = Infinity,
): Promise<Array<Extract<Resource, { kind: K }>>> {
  const out: Array<Extract<Resource, { kind: K }>> = [];
  let startAfter = '';
  let schemas: typeof import('./types.ts') | undefined;
  do {
    const page = await auth.listResources({ kind, limit: Math.min(MAX_LIST_PAGE, max), startAfter, packed: true });
    for (const data of pageItems(page)) {
      // Nodes in the auth server's own form skip the schemas, and zod with them (listednode.ts).
      const node = kind === 'node' ? fastListedNode(data) : undefined;
      out.push(
        (node ?? (schemas ??= await import('./types.ts')).parseAs(kind, data)) as Extract<Resource, { kind: K }>,
      );
    }
    startAfter = page.nextKey;
  } while (startAfter && out.length < max);
  return out;
}
