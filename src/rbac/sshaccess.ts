// The target's own access decision (DESIGN: "the target is the authority"). A node checks every user
// certificate itself, from its cached copy of the cluster's user CA, users and roles: validity, CA,
// principal = login, source address, cluster, the identity usable now (identity.ts: user not deleted or locked, no
// lock on it), roles still there, then RBAC (login allowed, labels match, deny wins). The proxy runs the same check
// without the node part.
import type { Clock } from '../time/clock.ts';
import { EXT_CLUSTER, EXT_ROLES, EXT_TRAITS } from '../api/certext.ts';
import type { Role } from '../api/types.ts';
import { parseCertificate, verifyCertificate, type SSHCertificate } from '../crypto/sshcert.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';
import type { ResourceCache } from '../cache/resources.ts';
import { ConnectionProblem } from '../api/errors.ts';
import { AccessChecker } from './checker.ts';
import { identityRefusal } from './identity.ts';

export type AccessDecision =
  | {
      allowed: true;
      user: string;
      cert: SSHCertificate;
      permitPortForwarding: boolean;
      permitGatewayPorts: boolean;
      permitAgentForwarding: boolean;
      permitPty: boolean;
    }
  /** `rbac`: the roles refused it (an access.denied event), not the certificate. */
  | { allowed: false; reason: string; rbac?: boolean };

export interface AccessTarget {
  cluster: string;
  /** The node as RBAC sees it; absent at the proxy, which checks identity only. */
  node?: () => { name: string; id?: string; labels: Record<string, string> };
}

function jsonExtension<T>(cert: SSHCertificate, name: string, fallback: T): T {
  try {
    return name in cert.extensions ? (JSON.parse(cert.extensions[name]!) as T) : fallback;
  } catch {
    return fallback;
  }
}

export function userCAKeys(cache: ResourceCache): Buffer[] {
  const ca = cache.get('cert_authority', 'user');
  return ca ? [...ca.spec.active_keys, ...ca.spec.additional_keys].map((k) => parseAuthorizedKey(k.public).blob) : [];
}

function rolesOf(cache: ResourceCache, cert: SSHCertificate): Role[] | string {
  const roles: Role[] = [];
  for (const name of jsonExtension<string[]>(cert, EXT_ROLES, [])) {
    const role = cache.get('role', name);
    if (!role) return `role "${name}" no longer exists`;
    roles.push(role);
  }
  return roles;
}

export function checkUserCert(
  cache: ResourceCache,
  clock: Clock,
  target: AccessTarget,
  req: { certBlob: Buffer; login: string; remoteAddr: string },
): AccessDecision {
  // A cache past its staleness bound throws: that is a denial here (fail closed), never an exception
  // escaping into the SSH server's event handlers.
  try {
    return decideUserCert(cache, clock, target, req);
  } catch (err) {
    if (err instanceof ConnectionProblem) return { allowed: false, reason: err.message };
    throw err;
  }
}

function decideUserCert(
  cache: ResourceCache,
  clock: Clock,
  target: AccessTarget,
  req: { certBlob: Buffer; login: string; remoteAddr: string },
): AccessDecision {
  let cert: SSHCertificate;
  try {
    cert = parseCertificate(req.certBlob);
    verifyCertificate(cert, {
      trustedCAs: userCAKeys(cache),
      now: clock.now(),
      certType: 'user',
      principal: target.node ? req.login : undefined,
      sourceAddress: req.remoteAddr,
    });
  } catch (err) {
    return { allowed: false, reason: (err as Error).message };
  }
  if (cert.extensions[EXT_CLUSTER] !== target.cluster)
    return { allowed: false, reason: 'certificate is for another cluster' };
  const node = target.node?.();
  const identity = { user: cert.keyId, roles: sshCertGrants(cert).roles, node };
  const refusal = identityRefusal(cache.get('user', cert.keyId), cache.list('lock'), identity, clock.now());
  if (refusal) return { allowed: false, reason: refusal };
  const roles = rolesOf(cache, cert);
  if (typeof roles === 'string') return { allowed: false, reason: roles };
  if (target.node) {
    const checker = new AccessChecker(roles, jsonExtension<Record<string, string[]>>(cert, EXT_TRAITS, {}));
    const decision = checker.checkNodeLogin(node!, req.login);
    if (!decision.allowed) return { allowed: false, reason: decision.reason, rbac: true };
  }
  const permitPortForwarding =
    'permit-port-forwarding' in cert.extensions && roles.some((r) => r.spec.options?.port_forwarding);
  return {
    allowed: true,
    user: cert.keyId,
    cert,
    permitPty: 'permit-pty' in cert.extensions,
    permitPortForwarding,
    permitGatewayPorts: permitPortForwarding && roles.some((r) => r.spec.options?.port_forwarding_gateway),
    permitAgentForwarding:
      'permit-agent-forwarding' in cert.extensions && roles.some((r) => r.spec.options?.forward_agent),
  };
}

/** The roles and traits an SSH user certificate carries. */
export function sshCertGrants(cert: SSHCertificate): { roles: string[]; traits: Record<string, string[]> } {
  return { roles: jsonExtension<string[]>(cert, EXT_ROLES, []), traits: jsonExtension(cert, EXT_TRAITS, {}) };
}

/** For routing at the proxy: may this user reach the node at all? (The node decides about the login.) */
export function canReachNode(
  cache: ResourceCache,
  grants: { roles: string[]; traits: Record<string, string[]> },
  node: { name: string; labels: Record<string, string> },
): boolean {
  const roles = grants.roles.map((n) => cache.get('role', n));
  if (roles.some((r) => !r)) return false;
  return new AccessChecker(roles as Role[], grants.traits).canSeeNode(node);
}
