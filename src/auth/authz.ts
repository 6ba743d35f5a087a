// Who is calling: every Auth API call is made with a client certificate from the cluster's TLS CA
// (checked by the TLS handshake), whose identity extension names a user or a service. Users are
// re-checked against the backend on every call: a deleted user, a deleted role or a locked user is
// refused at once, whatever the certificate still says; so is a host whose host id is locked or revoked.
import type { TLSSocket } from 'node:tls';
import { AccessDenied } from '../api/errors.ts';
import type { Resource, Verb } from '../api/types.ts';
import { identityFromPeerCert, type Identity } from '../crypto/x509.ts';
import { AccessChecker } from '../rbac/checker.ts';
import { identityRefusal } from '../rbac/identity.ts';
import { describeLock } from '../rbac/locks.ts';
import { hostLock } from './hostlocks.ts';
import type { AuthServer } from './server.ts';

/** Roles of services, carried in host certificates. `admin` is the local administrator (wctl on the auth host). */
export type SystemRole = 'admin' | 'proxy' | 'node' | 'db' | 'app' | 'kube';

export type Caller =
  | { kind: 'anonymous'; reason: string }
  | { kind: 'service'; name: string; systemRoles: SystemRole[]; identity: Identity }
  | { kind: 'user'; name: string; checker: AccessChecker; identity: Identity };

/** Node's names for certificate failures, in the words a user understands. */
function describeTLSError(code: string | undefined): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'your certificate has expired: log in again';
    case 'CERT_NOT_YET_VALID':
      return 'your certificate is not valid yet (check the clock)';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return "your certificate is not from this cluster's certificate authority";
    default:
      return `your certificate was refused (${code ?? 'no certificate'})`;
  }
}

/** What a connection's client certificate says, read once per TLS connection (the listener refuses renegotiation). */
type CertVerdict = { identity: Identity; expiresMs: number } | { reason: string };
const verdicts = new WeakMap<TLSSocket, CertVerdict>();

function readVerdict(auth: AuthServer, socket: TLSSocket): CertVerdict {
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw) return { reason: 'this call needs a client certificate: log in first' };
  if (!socket.authorized) return { reason: describeTLSError(String(socket.authorizationError ?? '')) };
  let identity: Identity;
  try {
    identity = identityFromPeerCert(peer);
  } catch {
    return { reason: 'your certificate carries no Ward identity' };
  }
  if (identity.cluster !== auth.clusterName) return { reason: 'your certificate is for another cluster' };
  return { identity, expiresMs: Date.parse(identity.expires) };
}

export async function identifyCaller(auth: AuthServer, socket: TLSSocket): Promise<Caller> {
  let verdict = verdicts.get(socket);
  if (!verdict) {
    verdict = readVerdict(auth, socket);
    verdicts.set(socket, verdict);
  }
  if ('reason' in verdict) return { kind: 'anonymous', reason: verdict.reason };
  // The handshake checked the dates once; a connection kept open past the certificate's end is refused too.
  if (!(auth.now().getTime() < verdict.expiresMs))
    return { kind: 'anonymous', reason: describeTLSError('CERT_HAS_EXPIRED') };
  const { identity } = verdict;
  if (identity.kind === 'host') {
    const hostId = identity.hostId ?? identity.username;
    // A host is refused at every call while a lock names its host id, which is also how a removed node or proxy
    // stays revoked (hostlocks.ts); a host whose listing merely expired has no lock and comes back.
    const lock = await hostLock(auth, hostId);
    if (lock) return { kind: 'anonymous', reason: describeLock(lock) };
    return { kind: 'service', name: hostId, systemRoles: (identity.systemRoles ?? []) as SystemRole[], identity };
  }
  const user = await auth.users.tryGetShared(identity.username);
  const target = { user: identity.username, roles: identity.roles };
  const refusal = identityRefusal(user, await auth.locks.listShared(), target, auth.now());
  if (refusal) return { kind: 'anonymous', reason: refusal };
  let roles;
  try {
    roles = await auth.loadRoles(identity.roles);
  } catch (err) {
    return { kind: 'anonymous', reason: (err as Error).message };
  }
  return { kind: 'user', name: identity.username, checker: new AccessChecker(roles, identity.traits ?? {}), identity };
}

export function requireAuthenticated(caller: Caller): Exclude<Caller, { kind: 'anonymous' }> {
  if (caller.kind === 'anonymous') throw new AccessDenied(caller.reason);
  return caller;
}

export function requireSystemRole(caller: Caller, ...roles: SystemRole[]): void {
  const c = requireAuthenticated(caller);
  if (c.kind === 'service' && c.systemRoles.some((r) => r === 'admin' || roles.includes(r))) return;
  throw new AccessDenied();
}

/** Kinds that services read to run: proxies and agents cache them. */
const SERVICE_READABLE = new Set(['node', 'proxy', 'role', 'cert_authority', 'user', 'lock']);

/** (kind, verb) check in front of every resource method. */
export function requireRule(caller: Caller, kind: string, verb: Verb): void {
  const c = requireAuthenticated(caller);
  if (c.kind === 'service') {
    if (c.systemRoles.includes('admin')) return;
    if ((verb === 'read' || verb === 'list') && SERVICE_READABLE.has(kind)) return;
    throw new AccessDenied();
  }
  const decision = c.checker.checkRule(kind, verb);
  if (!decision.allowed) throw new AccessDenied(`access denied: ${decision.reason}`);
}

/**
 * Whether `caller` may see `resource` at all, once its rules let it read the kind: the one visibility decision for
 * listings, single reads and watch streams (and so for the web API, which reads through them with the user's
 * identity), so that a node hidden from a listing is hidden from every other read too. A user sees the nodes their
 * roles' node_labels match and, without the session_tracker list rule, only the live sessions they are in. A
 * service sees what its rules let it read (it caches it).
 */
export function isVisible(caller: Caller, resource: Resource): boolean {
  if (caller.kind === 'anonymous') return false;
  if (caller.kind === 'service') return true;
  if (resource.kind === 'node') {
    return caller.checker.canSeeNode({ name: resource.metadata.name, labels: resource.metadata.labels ?? {} });
  }
  if (resource.kind === 'session_tracker' && !caller.checker.checkRule('session_tracker', 'list').allowed) {
    return resource.spec.participants.some((p) => p.user === caller.name);
  }
  return true;
}

export function callerName(caller: Caller): string {
  return caller.kind === 'anonymous'
    ? '(anonymous)'
    : caller.kind === 'service'
      ? `service:${caller.name}`
      : caller.name;
}
