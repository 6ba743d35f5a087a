// wctl get / create / rm / status: resources as YAML or JSON documents ({kind, version, metadata, spec}).
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import type { AuthClient } from '../../api/client.ts';
import { BadParameter, NotFound } from '../../api/errors.ts';
import { listAllResources } from '../../api/list.ts';
import { kindFromName, parseResource, type Resource } from '../../api/types.ts';
import { fingerprintSHA256, parseAuthorizedKey } from '../../crypto/sshkeys.ts';
import { fingerprintSPKI } from '../../crypto/x509.ts';
import { table } from '../table.ts';

export type Format = 'text' | 'yaml' | 'json';

export function checkFormat(f: string): Format {
  if (f !== 'text' && f !== 'yaml' && f !== 'json')
    throw new BadParameter(`unknown format "${f}" (expected text, yaml or json)`);
  return f;
}

function labels(l?: Record<string, string>): string {
  return Object.entries(l ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function textRows(resources: Resource[]): string {
  const kind = resources[0]?.kind;
  switch (kind) {
    case 'user':
      return table(
        ['User', 'Roles', 'Logins', 'Locked until'],
        resources.map((r) =>
          r.kind === 'user'
            ? [
                r.metadata.name,
                r.spec.roles.join(','),
                (r.spec.traits.logins ?? []).join(','),
                r.spec.locked_until ?? '',
              ]
            : [],
        ),
      );
    case 'role':
      return table(
        ['Role', 'Allowed logins', 'Node labels', 'Max TTL'],
        resources.map((r) =>
          r.kind === 'role'
            ? [
                r.metadata.name,
                (r.spec.allow?.logins ?? []).join(','),
                JSON.stringify(r.spec.allow?.node_labels ?? {}),
                r.spec.options?.max_session_ttl ?? '',
              ]
            : [],
        ),
      );
    case 'token':
      return table(
        ['Token', 'Type', 'Labels', 'Expires'],
        resources.map((r) =>
          r.kind === 'token'
            ? [r.metadata.name, r.spec.roles.join(','), labels(r.spec.labels), r.metadata.expires ?? 'never']
            : [],
        ),
      );
    case 'node':
      return table(
        ['Node', 'Address', 'Labels', 'Version'],
        resources.map((r) =>
          r.kind === 'node'
            ? [r.metadata.name, r.spec.tunnel ? '⟵ tunnel' : r.spec.addr, labels(r.metadata.labels), r.spec.version]
            : [],
        ),
      );
    case 'proxy':
      return table(
        ['Proxy', 'Address', 'Version'],
        resources.map((r) => (r.kind === 'proxy' ? [r.metadata.name, r.spec.addr, r.spec.version] : [])),
      );
    case 'cert_authority':
      return table(
        ['CA', 'Cluster', 'Fingerprint', 'Rotation'],
        resources.map((r) =>
          r.kind === 'cert_authority' ? [r.spec.type, r.spec.cluster, caFingerprint(r), r.spec.rotation.phase] : [],
        ),
      );
    default:
      return '';
  }
}

/** SSH CAs as `ssh-keygen -lf` shows them; X.509 CAs by their SPKI pin. */
export function caFingerprint(ca: Extract<Resource, { kind: 'cert_authority' }>): string {
  const key = ca.spec.active_keys[0]!.public;
  if (ca.spec.type === 'user' || ca.spec.type === 'host') return fingerprintSHA256(parseAuthorizedKey(key).blob);
  if (ca.spec.type === 'jwt') return '(JWT signing key)';
  return fingerprintSPKI(key);
}

export function printResources(resources: Resource[], format: Format): string {
  if (format === 'json') return JSON.stringify(resources.length === 1 ? resources[0] : resources, null, 2) + '\n';
  if (format === 'yaml') return resources.map((r) => stringify(r)).join('---\n');
  return resources.length ? textRows(resources) : 'none\n';
}

export async function getResources(
  auth: AuthClient,
  kindName: string,
  name: string | undefined,
  format: Format,
): Promise<string> {
  const kind = kindFromName(kindName);
  if (name) {
    try {
      const res = await auth.getResource({ kind, name });
      return printResources([parseResource(JSON.parse(res.json))], format);
    } catch (err) {
      // Nodes are named by their host id; people know them by host name, as `wsh ls` shows them.
      if (!(err instanceof NotFound) || kind !== 'node') throw err;
      const byHostname = (await listAllResources(auth, kind)).filter(
        (n) => n.kind === 'node' && n.spec.hostname === name,
      );
      if (!byHostname.length)
        throw new NotFound(`node "${name}" not found (neither a node id nor a host name: wctl get nodes lists them)`);
      return printResources(byHostname, format);
    }
  }
  return printResources(await listAllResources(auth, kind), format);
}

/** Reads every document of a YAML (or JSON) file and validates each before sending any. */
export function readResourceFile(path: string): Resource[] {
  let text: string;
  try {
    text = path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  } catch (err) {
    throw new BadParameter(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const docs = parseAllDocuments(text);
  const resources: Resource[] = [];
  for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    if (doc.errors.length)
      throw new BadParameter(`${path}: document ${i + 1} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    const data = doc.toJS();
    if (data === null || data === undefined) continue;
    try {
      resources.push(parseResource(data));
    } catch (err) {
      throw new BadParameter(`${path}: document ${i + 1}: ${(err as Error).message}`);
    }
  }
  if (!resources.length) throw new BadParameter(`${path} holds no resources`);
  return resources;
}
