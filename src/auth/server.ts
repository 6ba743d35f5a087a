// The Auth Service's logic: users, roles, tokens, CAs and certificate issuance over the backend.
// It trusts its caller: authentication and authorisation happen in front of it (authz.ts, api.ts).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Backend, EventStore } from '../backend/backend.ts';
import type { Clock } from '../time/clock.ts';
import { AccessDenied, BadParameter, NotFound } from '../api/errors.ts';
import type { CAType, CertAuthority, Lock, Role, Token, User } from '../api/types.ts';
import type { AuditLog } from '../events/audit.ts';
import { RecordingStore } from '../events/recordings.ts';
import type { Registry } from 'prom-client';
import { fingerprintSPKI } from '../crypto/x509.ts';
import { AccessChecker } from '../rbac/checker.ts';
import { identityRefusal, isUserLocked } from '../rbac/identity.ts';
import { lockFor, type LockTarget } from '../rbac/locks.ts';
import type { SecondFactorMode } from './mfadevices.ts';
import type { ResourceService } from '../services/resources.ts';
import { Stores } from '../services/stores.ts';
import { issueHostTLSCert, issueUserSSHCert, issueUserTLSCert, type HostCertRequest } from './certs.ts';
import { ensureBuiltinRoles, ensureCAs } from './init.ts';
import { presentedTLSCA, trustedTLSCAs, type RotationPhase } from '../api/rotation.ts';
import { ROTATABLE, rotate } from './rotation.ts';
import type { SoftwareKeyStore } from './keystore.ts';
import { checkPasswordPolicy, generatePassword, hashPassword } from './passwords.ts';

export { VERSION } from '../api/version.ts';

/**
 * Host certificates live this long unless auth_service.host_cert_ttl says otherwise (AuthServer.hostCertTTLMs).
 * Hosts renew both before they expire, and the SSH one at a host CA rotation (RenewHostCerts, renew.ts).
 */
export const HOST_CERT_TTL_MS = 365 * 86_400_000;

/** The auth server's settings (from ward.yaml's auth_service); its collaborators are AuthServerParts. */
export interface AuthServerConfig {
  clusterName: string;
  log: Logger;
  /** Failed logins in a row before the user is locked, and for how long. */
  lockout: { maxAttempts: number; durationMs: number };
  /** Where session recordings are kept (the data dir's `recordings/`); none: uploads are refused. */
  recordingsDir?: string;
  /** Where the auth server's metrics go (the diagnostics listener's registry). */
  metrics?: Registry;
  /** What a login needs besides the password (auth_service.second_factor). Default off. */
  secondFactor?: SecondFactorMode;
  /** WebAuthn relying party: the host name browsers reach the proxies by (default localhost). */
  webauthnRPID?: string;
  /** How long host certificates live (auth_service.host_cert_ttl); default HOST_CERT_TTL_MS, a year. */
  hostCertTTLMs?: number;
}

/**
 * What an auth server is built from (STYLE.md 6): `ward start` wires these, and tests wire the same parts. The
 * stores are built from `backend` in one place (services/stores.ts); decisions read the time from `clock` alone.
 */
export interface AuthServerParts {
  backend: Backend & EventStore;
  /** Signs with the CA keys; code never reads a CA private key outside it. */
  keystore: SoftwareKeyStore;
  clock: Clock;
  /** Where audit events go; a failed write fails the operation. */
  audit: AuditLog;
  config: AuthServerConfig;
}

export interface Certs {
  sshCert: string;
  tlsCert: string;
  tlsCAs: string[];
  sshHostCAs: string[];
  clusterName: string;
  ttlMs: number;
}

export interface CertKeys {
  sshPublicKey: string;
  tlsPublicKey: string;
}

export class AuthServer {
  readonly users: ResourceService<'user'>;
  readonly roles: ResourceService<'role'>;
  readonly tokens: ResourceService<'token'>;
  readonly nodes: ResourceService<'node'>;
  readonly proxies: ResourceService<'proxy'>;
  readonly cas: ResourceService<'cert_authority'>;
  readonly stores: Stores;
  readonly backend: Backend & EventStore;
  readonly keystore: SoftwareKeyStore;
  readonly clock: Clock;
  readonly audit: AuditLog;
  readonly config: AuthServerConfig;
  readonly recordings: RecordingStore | undefined;
  readonly sessions: ResourceService<'session'>;
  readonly sessionTrackers: ResourceService<'session_tracker'>;
  readonly locks: ResourceService<'lock'>;
  /** Keys the decoy challenges of a sign-in's step one (signindecoy.ts); set by create(), never logged. */
  signInSecret!: Buffer;

  private constructor(parts: AuthServerParts) {
    this.backend = parts.backend;
    this.keystore = parts.keystore;
    this.clock = parts.clock;
    this.audit = parts.audit;
    this.config = parts.config;
    const stores = new Stores(parts.backend);
    this.stores = stores;
    this.users = stores.users;
    this.roles = stores.roles;
    this.tokens = stores.tokens;
    this.nodes = stores.nodes;
    this.proxies = stores.proxies;
    this.cas = stores.cas;
    this.sessions = stores.sessions;
    this.sessionTrackers = stores.sessionTrackers;
    this.locks = stores.locks;
    this.recordings = this.config.recordingsDir ? new RecordingStore(this.config.recordingsDir) : undefined;
  }

  static async create(parts: AuthServerParts): Promise<AuthServer> {
    const server = new AuthServer(parts);
    const { config } = parts;
    await ensureCAs(server.cas, config.clusterName, server.keystore, server.now(), config.log);
    await ensureBuiltinRoles(server.roles);
    server.signInSecret = await server.stores.signInSecret.ensure();
    return server;
  }

  get clusterName(): string {
    return this.config.clusterName;
  }
  get secondFactor(): SecondFactorMode {
    return this.config.secondFactor ?? 'off';
  }
  /** Hosts renew their certificates when a third of this is left (host/renewal.ts). */
  get hostCertTTLMs(): number {
    return this.config.hostCertTTLMs ?? HOST_CERT_TTL_MS;
  }
  now(): Date {
    return this.clock.now();
  }

  /** Every Ping answers with these: the certificate parse behind each pin runs once per revision of the TLS CA. */
  async tlsCAPins(): Promise<string[]> {
    const ca = await this.cas.getShared('tls');
    const revision = ca.metadata.revision;
    if (revision && this.pins?.revision === revision) return this.pins.pins;
    // During a rotation both CAs are pinned; first the one servers present now, which a join compares its pin with.
    const presented = presentedTLSCA(ca);
    const pems = [presented, ...trustedTLSCAs(ca)].filter((pem) => pem !== undefined);
    const pins = [...new Set(pems.map((pem) => fingerprintSPKI(pem)))];
    if (revision) this.pins = { revision, pins };
    return pins;
  }
  private pins?: { revision: string; pins: string[] };

  /**
   * The roles of a user (or of a certificate's role list), read from the backend at every call: a role deleted
   * or edited since counts at once. Shared, frozen objects (ResourceService.getShared).
   */
  async loadRoles(names: readonly string[]): Promise<Role[]> {
    const roles: Role[] = [];
    for (const name of names) {
      const role = await this.roles.tryGetShared(name);
      if (!role) throw new AccessDenied(`role "${name}" no longer exists`);
      roles.push(role);
    }
    return roles;
  }

  async checkerFor(user: User): Promise<AccessChecker> {
    return new AccessChecker(await this.loadRoles(user.spec.roles), user.spec.traits);
  }

  isLocked(user: User): boolean {
    return isUserLocked(user, this.now());
  }

  /** The lock (wctl lock) in force on this user or one of these roles, if any. */
  async lockOn(target: LockTarget): Promise<Lock | undefined> {
    return lockFor(await this.locks.listShared(), target, this.now());
  }

  // ---- users ----

  async createUser(req: { name: string; roles: string[]; logins: string[]; password?: string; createdBy: string }) {
    await this.loadRoles(req.roles).catch(() => {
      throw new BadParameter(`unknown role in ${JSON.stringify(req.roles)}: create the role first`);
    });
    const password = req.password || generatePassword();
    checkPasswordPolicy(password);
    const user = await this.users.create({
      kind: 'user',
      version: 'v1',
      metadata: { name: req.name },
      spec: {
        roles: req.roles,
        traits: { logins: req.logins },
        created_by: req.createdBy,
        created: this.now().toISOString(),
      },
    });
    await this.stores.passwords.set(req.name, await hashPassword(password));
    await this.audit.emit('user.create', { user: req.createdBy, name: req.name, roles: req.roles });
    return { user, generatedPassword: req.password ? '' : password };
  }

  async resetPassword(name: string, password: string | undefined, by: string): Promise<string> {
    await this.users.get(name);
    const next = password || generatePassword();
    checkPasswordPolicy(next);
    await this.stores.passwords.set(name, await hashPassword(next));
    await this.users.modify(name, (u) => ({ ...u, spec: { ...u.spec, locked_until: undefined } }));
    // The failure counts of every source (login.ts keeps one per source address).
    await this.stores.loginFailures.forgetAll(name);
    await this.audit.emit('user.password_change', { user: by, name });
    return password ? '' : next;
  }

  async deleteUser(name: string, by: string): Promise<void> {
    await this.users.delete(name);
    await this.stores.passwords.delete(name).catch(() => undefined);
    await this.stores.mfa.removeAll(name);
    await this.audit.emit('user.delete', { user: by, name });
  }

  // ---- join tokens ----

  async createToken(req: {
    roles: Token['spec']['roles'];
    ttlMs: number;
    labels?: Record<string, string>;
    by: string;
  }) {
    if (req.ttlMs <= 0 || req.ttlMs > 7 * 86_400_000) throw new BadParameter('token TTL must be between 1s and 7 days');
    const token = await this.tokens.create({
      kind: 'token',
      version: 'v1',
      metadata: {
        name: randomBytes(16).toString('hex'),
        expires: new Date(this.now().getTime() + req.ttlMs).toISOString(),
      },
      spec: { roles: req.roles, labels: req.labels },
    });
    await this.audit.emit('join_token.create', { user: req.by, roles: req.roles, expires: token.metadata.expires });
    return token;
  }

  // ---- certificates ----

  /** Certificates for a user, TTL capped by the roles' max_session_ttl. */
  async issueUserCerts(user: User, keys: CertKeys, ttlMs: number, issuedBy: string): Promise<Certs> {
    const target = { user: user.metadata.name, roles: user.spec.roles };
    const refusal = identityRefusal(user, await this.locks.listShared(), target, this.now());
    if (refusal) throw new AccessDenied(refusal);
    const checker = await this.checkerFor(user);
    const granted = Math.min(ttlMs, checker.maxSessionTTL());
    if (!(granted > 0)) throw new BadParameter('certificate TTL must be positive');
    const now = this.now();
    const req = {
      username: user.metadata.name,
      roles: user.spec.roles,
      logins: checker.logins(),
      traits: user.spec.traits,
      cluster: this.clusterName,
      ...keys,
      permitPortForwarding: checker.roles.some((r) => r.spec.options?.port_forwarding),
      permitAgentForwarding: checker.roles.some((r) => r.spec.options?.forward_agent),
      now,
      expires: new Date(now.getTime() + granted),
    };
    const [userCA, tlsCA, hostCA] = [
      await this.cas.getShared('user'),
      await this.cas.getShared('tls'),
      await this.cas.getShared('host'),
    ];
    const sshCert = await issueUserSSHCert(req, this.keystore.sshSigner(userCA));
    const tlsCert = await issueUserTLSCert(req, this.keystore.tlsSigner(tlsCA));
    await this.audit.emit('cert.create', {
      user: user.metadata.name,
      issued_by: issuedBy,
      principals: req.logins,
      expires: req.expires.toISOString(),
    });
    return { sshCert, tlsCert, ...(await this.trustBundle({ tls: tlsCA, host: hostCA })), ttlMs: granted };
  }

  /** A service's TLS identity (proxy, local admin). */
  async issueHostCerts(req: Omit<HostCertRequest, 'cluster' | 'now'>): Promise<{ tlsCert: string; tlsCAs: string[] }> {
    const tlsCA = await this.cas.getShared('tls');
    const tlsCert = await issueHostTLSCert(
      { ...req, cluster: this.clusterName, now: this.now() },
      this.keystore.tlsSigner(tlsCA),
    );
    return { tlsCert, tlsCAs: (await this.trustBundle()).tlsCAs };
  }

  /** What clients need to trust the cluster: TLS CA certs and known_hosts lines for the host CA. */
  async trustBundle(read?: {
    tls: CertAuthority;
    host: CertAuthority;
  }): Promise<{ tlsCAs: string[]; sshHostCAs: string[]; clusterName: string }> {
    // A caller that has just read the CAs passes them: a login read the TLS CA twice before.
    const [tls, host] = read
      ? [read.tls, read.host]
      : [await this.cas.getShared('tls'), await this.cas.getShared('host')];
    return {
      tlsCAs: [...tls.spec.active_keys, ...tls.spec.additional_keys].map((k) => k.public),
      sshHostCAs: [...host.spec.active_keys, ...host.spec.additional_keys].map((k) => `@cert-authority * ${k.public}`),
      clusterName: this.clusterName,
    };
  }

  /**
   * Moves a CA to the next phase of a rotation, or rolls the rotation back (rotation.ts), and returns the CA.
   * The target phase is explicit, so a request repeated by mistake (or two admins at once) is refused rather
   * than taken for a second step.
   */
  async rotateCA(
    type: string,
    move: { target: RotationPhase } | { rollback: true },
    by: string,
  ): Promise<CertAuthority> {
    if (!ROTATABLE.has(type)) {
      throw new BadParameter(
        `the ${type} CA cannot be rotated yet: only the user, host and tls CAs rotate (docs/rotation.md says why)`,
      );
    }
    // A TLS CA key is a self-signed certificate, made before the (synchronous) compare-and-swap and used only if
    // this step starts a rotation. Its name differs from the old CA's, so no TLS stack can mistake one for the other.
    const now = this.now();
    const caName = `${this.clusterName} Ward TLS CA ${now.toISOString().slice(0, 19)}Z`;
    const tlsKey =
      type === 'tls' && 'target' in move && move.target === 'init'
        ? await this.keystore.newTLSKey(this.clusterName, caName, now)
        : undefined;
    let from: RotationPhase | undefined;
    const ca = await this.cas.modify(type, (current) => {
      from = current.spec.rotation.phase;
      return rotate(current, move, () => tlsKey ?? this.keystore.newSSHKey(`ward-${type}-ca@${this.clusterName}`));
    });
    await this.audit.emit('ca.rotated', {
      user: by,
      type,
      from,
      to: ca.spec.rotation.phase,
      rollback: 'rollback' in move,
    });
    return ca;
  }

  /** CA public keys in the form the outside tool wants. */
  async exportCAs(type: string): Promise<string[]> {
    const types: Record<string, CAType> = { user: 'user', host: 'host', tls: 'tls', db: 'db' };
    const caType = types[type];
    if (!caType) throw new BadParameter(`unknown CA type "${type}" (expected user, host, tls or db)`);
    const ca = await this.cas.get(caType);
    const keys = [...ca.spec.active_keys, ...ca.spec.additional_keys].map((k) => k.public.trim());
    // user: one key per line, as sshd's TrustedUserCAKeys file takes it; host: known_hosts lines.
    if (caType === 'host') return keys.map((k) => `@cert-authority * ${k}`);
    return keys;
  }

  /** The user as stored now (a shared, frozen object: ResourceService.getShared). */
  async getUserOrDeny(name: string): Promise<User> {
    const user = await this.users.tryGetShared(name);
    if (!user) throw new NotFound(`user "${name}" not found`);
    return user;
  }
}
