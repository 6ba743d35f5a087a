// Who may call each Auth API RPC, in one table a reviewer reads in one sitting. Each entry's `allow` takes the
// identified caller and the request, refuses (AccessDenied, or BadParameter for a request it cannot read) or
// grants: the caller narrowed to what it proved to be (`UserCaller`, `ServiceCaller`...) and what the call acts on
// (`on`: a kind, a parsed resource, whose devices...). The dispatcher in api.ts runs the entry before the handler and
// hands the handler only the grant, so a handler cannot forget a check. A check that needs the loaded resource
// (labels, a session's participants) is the entry's `visible` hook, which the handler applies to what it loads.
import type { MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import type { AuthService } from '../api/gen/ward/auth/v1/auth_pb.ts';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { kindFromName, parseResource, KINDS, type Kind, type Resource, type Verb } from '../api/types.ts';
import { EVENTS_BY_SYSTEM_ROLE, reportableEvents } from '../events/catalog.ts';
import {
  isVisible,
  requireAuthenticated,
  requireRule,
  requireSystemRole,
  type Caller,
  type SystemRole,
} from './authz.ts';
import { holdsHostIdentity } from './renew.ts';

type Methods = typeof AuthService.method;
export type RPC = keyof Methods;
export type RequestOf<M extends RPC> = MessageShape<Methods[M]['input']>;
export type ResponseOf<M extends RPC> = MessageInitShape<Methods[M]['output']>;
export type UnaryRPC = { [M in RPC]: Methods[M]['methodKind'] extends 'unary' ? M : never }[RPC];

export type Authenticated = Exclude<Caller, { kind: 'anonymous' }>;
export type UserCaller = Extract<Caller, { kind: 'user' }>;
export type ServiceCaller = Extract<Caller, { kind: 'service' }>;

/** A caller with a valid certificate, whatever it is. */
function signedIn(who: Caller): Authenticated {
  return requireAuthenticated(who);
}

/** A caller whose roles allow `verb` on `kind` (services: admin, or reading what they cache). */
function ruled(who: Caller, kind: string, verb: Verb): Authenticated {
  requireRule(who, kind, verb);
  return signedIn(who);
}

/** A service holding one of `roles`, or the local administrator. */
function systemRole(who: Caller, ...roles: SystemRole[]): ServiceCaller {
  requireSystemRole(who, ...roles);
  return who as ServiceCaller;
}

/** Any host (service) certificate. */
function host(who: Caller): ServiceCaller {
  const c = signedIn(who);
  if (c.kind !== 'service') throw new AccessDenied();
  return c;
}

/** A user: second factors belong to users only. */
function user(who: Caller): UserCaller {
  const c = signedIn(who);
  if (c.kind !== 'user') throw new AccessDenied('only users have second factors');
  return c;
}

/** A node heartbeats a node, a proxy a proxy: the kind follows from the certificate's role. */
function heartbeatKind(c: ServiceCaller): 'node' | 'proxy' {
  if (c.systemRoles.includes('node')) return 'node';
  if (c.systemRoles.includes('proxy')) return 'proxy';
  throw new AccessDenied();
}

function heartbeatJSON(json: string | undefined): unknown {
  try {
    return JSON.parse(json ?? '');
  } catch {
    throw new BadParameter('heartbeat resource is not valid JSON');
  }
}

/** One message of a HeartbeatStream: a host heartbeats itself and never removes itself (its listing expires). */
function heartbeatMessage(who: Caller, req: RequestOf<'heartbeatStream'>) {
  const c = host(who);
  if (req.remove) throw new BadParameter('a host does not remove itself: its listing ends when its heartbeats stop');
  const data = heartbeatJSON(req.resource?.json);
  return { who: c, on: { kind: heartbeatKind(c), data } };
}

export interface Entry<M extends RPC> {
  /** Lets a caller without a (valid) certificate through to `allow`; every other entry refuses it first. */
  anonymous?: true;
  /** Refuses the call, or grants it: the caller narrowed, and what it acts on. */
  allow(who: Caller, req: RequestOf<M>): { who: Caller; on?: unknown };
  /** Whether the granted caller may see a resource the handler loaded: what it cannot see is answered as missing. */
  visible?: (who: Caller, resource: Resource) => boolean;
  /** For a stream: who may open it, before its first message. */
  admit?: (who: Caller) => Authenticated;
}

export const RPC_AUTHZ = {
  // Anyone: what a client needs before it has a certificate. Which backend is behind is told only when signed in.
  ping: { anonymous: true, allow: (who) => ({ who, on: { signedIn: who.kind !== 'anonymous' } }) },
  // The token is the credential: joins are rate limited (api.ts) before it is looked up.
  registerUsingToken: { anonymous: true, allow: (who) => ({ who }) },

  // Resources: the (kind, verb) rule of the caller's roles, the kind read from the request.
  getResource: {
    allow: (who, req) => {
      const kind = kindFromName(req.kind);
      return { who: ruled(who, kind, 'read'), on: kind };
    },
    visible: isVisible,
  },
  listResources: {
    allow: (who, req) => {
      const kind = kindFromName(req.kind);
      // Everyone sees the live sessions they are in; seeing all of them takes the session_tracker rule.
      const ownSessionsOnly =
        kind === 'session_tracker' && who.kind === 'user' && !who.checker.checkRule(kind, 'list').allowed;
      return { who: ownSessionsOnly ? signedIn(who) : ruled(who, kind, 'list'), on: { kind, ownSessionsOnly } };
    },
    visible: isVisible,
  },
  upsertResource: {
    allow: (who, req) => {
      let data: unknown;
      try {
        data = JSON.parse(req.resource?.json ?? '');
      } catch {
        throw new BadParameter('resource is not valid JSON');
      }
      const resource = parseResource(data);
      if (resource.kind === 'cert_authority') {
        throw new BadParameter('certificate authorities are created by the auth server, not uploaded');
      }
      // Rights before anything is looked up: a caller who may not create users must not learn which roles exist.
      requireRule(who, resource.kind, req.overwrite ? 'update' : 'create');
      return { who: ruled(who, resource.kind, 'create'), on: resource };
    },
  },
  deleteResource: {
    allow: (who, req) => {
      const kind = kindFromName(req.kind);
      if (kind === 'cert_authority') throw new BadParameter('certificate authorities cannot be deleted');
      return { who: ruled(who, kind, 'delete'), on: kind };
    },
  },
  watch: {
    allow: (who, req) => {
      const c = signedIn(who); // before the kinds are parsed, as for unary calls
      const kinds: Kind[] = req.kinds.length ? req.kinds.map(kindFromName) : KINDS;
      for (const kind of kinds) requireRule(c, kind, 'list');
      return { who: c, on: kinds };
    },
    visible: isVisible,
  },
  createUser: { allow: (who) => ({ who: ruled(who, 'user', 'create') }) },
  resetPassword: { allow: (who) => ({ who: ruled(who, 'user', 'update') }) },
  createToken: { allow: (who) => ({ who: ruled(who, 'token', 'create') }) },
  rotateCertAuthority: { allow: (who) => ({ who: ruled(who, 'cert_authority', 'update') }) },
  searchEvents: { allow: (who) => ({ who: ruled(who, 'event', 'list') }) },
  getRecording: { allow: (who) => ({ who: ruled(who, 'session', 'read') }) },

  // Certificates. Password login is the proxy's: a user certificate may not submit passwords.
  authenticateUser: { allow: (who) => ({ who: systemRole(who, 'proxy') }) },
  // Admins mint certificates for anyone (wctl auth sign); a user renews only their own, never past the expiry of
  // the certificate they call with.
  generateUserCerts: {
    allow: (who, req) => {
      const c = signedIn(who);
      if (c.kind === 'user' && c.name === req.user) {
        return { who: c, on: { notAfterMs: Date.parse(c.identity.expires) } };
      }
      return { who: systemRole(c, 'admin'), on: { notAfterMs: Infinity } };
    },
  },
  exportCAs: { allow: (who) => ({ who: signedIn(who) }) },
  // Every host that joined with a token renews its own certificates, as its TLS certificate names it (renew.ts).
  renewHostCerts: {
    allow: (who) => {
      const c = host(who);
      if (!holdsHostIdentity(c.systemRoles)) throw new AccessDenied();
      return { who: c };
    },
  },

  // Hosts: each acts as the host id of its certificate.
  heartbeat: {
    allow: (who, req) => {
      const c = host(who);
      const data = heartbeatJSON(req.resource?.json);
      if ((data as { kind?: unknown } | null)?.kind === 'session_tracker') {
        if (!c.systemRoles.includes('node')) throw new AccessDenied();
        return { who: c, on: { kind: 'session_tracker' as const, data } };
      }
      return { who: c, on: { kind: heartbeatKind(c), data } };
    },
  },
  // Checked at every message: a certificate that ended, or was renewed, while the stream stayed open is refused.
  heartbeatStream: { admit: host, allow: heartbeatMessage },
  uploadRecording: {
    allow: (who) => {
      const c = host(who);
      if (!c.systemRoles.includes('node')) throw new AccessDenied();
      return { who: c };
    },
  },
  // A host reports only the kinds of event a host of its role witnesses (catalog.ts), never what only the auth
  // server writes; `on.reportable` is that list, which the handler holds each event to.
  emitAuditEvents: {
    allow: (who) => {
      const c = host(who);
      const reportable = reportableEvents(c.systemRoles);
      if (reportable.size === 0) {
        throw new AccessDenied(`a ${c.systemRoles.join(',') || 'host'} reports no audit events`);
      }
      return { who: c, on: { reportable, role: c.systemRoles.find((r) => EVENTS_BY_SYSTEM_ROLE[r]) ?? '' } };
    },
  },

  // A user's own second factors, never anyone else's whatever their roles (an admin removes a user's devices by
  // resetting the user). A proxy begins one for the user of an invite or reset link (sign-up).
  beginMFARegistration: {
    allow: (who, req) => {
      const c = signedIn(who);
      if (req.userToken) return { who: systemRole(c, 'proxy'), on: { viaLink: req.userToken } };
      const u = user(c);
      return { who: u, on: { user: u.name } };
    },
  },
  finishMFARegistration: { allow: (who) => ({ who: user(who) }) },
  listMFADevices: { allow: (who) => ({ who: user(who) }) },
  deleteMFADevice: { allow: (who) => ({ who: user(who) }) },
  // A signed-in user asks for their own devices (to prove one before adding another); a proxy asks for a sign-in.
  createAuthenticateChallenge: {
    allow: (who, req) => {
      const c = signedIn(who);
      if (c.kind !== 'user') return { who: systemRole(c, 'proxy'), on: { ownDevicesOf: '' } };
      if (req.user && req.user !== c.name) {
        throw new AccessDenied('a user asks for challenges for their own devices only');
      }
      return { who: c, on: { ownDevicesOf: c.name } };
    },
  },

  // The web front: only a proxy holds the browser's secret (the auth server never sees it).
  createWebSession: { allow: (who) => ({ who: systemRole(who, 'proxy') }) },
  getWebSession: { allow: (who) => ({ who: systemRole(who, 'proxy') }) },
  deleteWebSession: { allow: (who) => ({ who: systemRole(who, 'proxy') }) },
  getUserToken: { allow: (who) => ({ who: systemRole(who, 'proxy') }) },
  useUserToken: { allow: (who) => ({ who: systemRole(who, 'proxy') }) },
} satisfies { [M in RPC]: Entry<M> };

type Table = typeof RPC_AUTHZ;
/** What an entry grants: the handler's only view of the caller. */
export type GrantOf<M extends RPC> = ReturnType<Table[M]['allow']>;

/** What a handler is given: the grant, and the entry's visibility check bound to the caller (none: sees all). */
export type Call<M extends RPC> = GrantOf<M> & { visible?: (resource: Resource) => boolean };

export type UnaryHandler<M extends UnaryRPC> = (
  req: RequestOf<M>,
  call: Call<M>,
  ctx: HandlerContext,
) => Promise<ResponseOf<M>>;
export type UnaryHandlers = { [M in UnaryRPC]: UnaryHandler<M> };

/**
 * Runs `method`'s entry for `who`: a caller without a valid certificate is refused before its request is looked at
 * (nothing in it is parsed or answered), unless the entry says otherwise.
 */
export function authorize<M extends RPC>(method: M, who: Caller, req: RequestOf<M>): Call<M> {
  // One place widens the table's precise entry types to the common shape; `M` keeps the handler's side typed.
  const entry = RPC_AUTHZ[method] as unknown as Entry<M>;
  if (!entry.anonymous) requireAuthenticated(who);
  const grant = entry.allow(who, req) as GrantOf<M>;
  // A service sees whatever its rules let it read (isVisible): only a user's reads are filtered.
  const hook = entry.visible;
  const visible = hook && grant.who.kind === 'user' ? (r: Resource) => hook(grant.who, r) : undefined;
  return { ...grant, visible };
}

/** Who may open a stream (its `admit`, else a valid certificate), before its first message. */
export function admit(method: RPC, who: Caller): Authenticated {
  const entry = RPC_AUTHZ[method] as unknown as Entry<RPC>;
  return entry.admit ? entry.admit(who) : requireAuthenticated(who);
}
