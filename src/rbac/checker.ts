// The access decision for one identity: which logins its SSH certificate carries, how long its
// certificates may live, which API calls it may make and which nodes it may reach. Deny always wins.
import { parseDuration } from '../time/duration.ts';
import type { Role, Verb } from '../api/types.ts';
import { expandTemplates, matchAnyLabel, matchLabels, matchValue } from './match.ts';

/** Used when no role sets max_session_ttl: Teleport's default of 30 hours. */
export const DEFAULT_MAX_SESSION_TTL_MS = 30 * 3_600_000;

export interface NodeTarget {
  name: string;
  labels: Record<string, string>;
}

export type Decision = { allowed: true } | { allowed: false; reason: string };

export class AccessChecker {
  constructor(
    readonly roles: readonly Role[],
    private readonly traits: Record<string, string[]>,
  ) {}

  /** OS logins the user may use: allowed by some role, denied by none. These become SSH principals. */
  logins(): string[] {
    const denied = new Set(this.roles.flatMap((r) => expandTemplates(r.spec.deny?.logins, this.traits)));
    const allowed = this.roles.flatMap((r) => expandTemplates(r.spec.allow?.logins, this.traits));
    return [...new Set(allowed)].filter((l) => !denied.has(l) && !denied.has('*') && l !== '*');
  }

  /** The shortest max_session_ttl among the roles. */
  maxSessionTTL(): number {
    const ttls = this.roles
      .map((r) => r.spec.options?.max_session_ttl)
      .filter((t): t is string => !!t)
      .map(parseDuration);
    return ttls.length ? Math.min(...ttls) : DEFAULT_MAX_SESSION_TTL_MS;
  }

  /** May this identity do `verb` on resources of `kind`? */
  checkRule(kind: string, verb: Verb): Decision {
    const hits = (rules: Role['spec']['allow']) =>
      (rules?.rules ?? []).some(
        (rule) =>
          rule.resources.some((r) => r === '*' || r === kind) && rule.verbs.some((v) => v === '*' || v === verb),
      );
    const deny = this.roles.find((r) => hits(r.spec.deny));
    if (deny) return { allowed: false, reason: `role "${deny.metadata.name}" denies ${verb} on ${kind}` };
    if (this.roles.some((r) => hits(r.spec.allow))) return { allowed: true };
    return { allowed: false, reason: `no role allows ${verb} on ${kind}` };
  }

  /** May this identity see the node at all (for listings)? */
  canSeeNode(node: NodeTarget): boolean {
    if (this.roles.some((r) => matchAnyLabel(r.spec.deny?.node_labels, node.labels))) return false;
    return this.roles.some((r) => matchLabels(r.spec.allow?.node_labels, node.labels));
  }

  /** May this identity log in to `node` as `login`? One role must grant both the login and the labels. */
  checkNodeLogin(node: NodeTarget, login: string): Decision {
    for (const role of this.roles) {
      if (matchAnyLabel(role.spec.deny?.node_labels, node.labels)) {
        return { allowed: false, reason: `role "${role.metadata.name}" denies access to node ${node.name}` };
      }
      const denied = expandTemplates(role.spec.deny?.logins, this.traits);
      if (denied.some((d) => matchValue(d, login))) {
        return { allowed: false, reason: `role "${role.metadata.name}" denies login "${login}"` };
      }
    }
    const granted = this.roles.some(
      (r) =>
        matchLabels(r.spec.allow?.node_labels, node.labels) &&
        expandTemplates(r.spec.allow?.logins, this.traits).includes(login),
    );
    return granted
      ? { allowed: true }
      : { allowed: false, reason: `no role allows login "${login}" on node ${node.name}` };
  }

  /**
   * May `joiner` (this identity) join a live session on `node` in `mode`? Joining a shell is acting as its login
   * there (typing into a root shell is root access, and watching one shows what root sees), so the joiner needs that
   * login on the node as for logging in, even in their own session; someone else's also takes `read` (watch) or
   * `update` (type) on session_tracker.
   */
  checkSessionJoin(
    node: NodeTarget,
    session: { user: string; login: string },
    joiner: string,
    mode: 'peer' | 'observer',
  ): Decision {
    const login = this.checkNodeLogin(node, session.login);
    if (!login.allowed) return login;
    if (session.user === joiner) return { allowed: true };
    return this.checkRule('session_tracker', mode === 'peer' ? 'update' : 'read');
  }
}
