// The Auth API's ConnectRPC handlers: translate messages, identify the caller, check its rights, call
// the AuthServer. Errors become RPC statuses here (with the Ward code in a header), so a client gets
// a typed error and one clear line, never a stack trace.
import type { TLSSocket } from 'node:tls';
import { ConnectError, createContextKey, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { AuthService } from '../api/gen/ward/auth/v1/auth_pb.ts';
import {
  AccessDenied,
  BadParameter,
  Internal,
  LimitExceeded,
  NotFound,
  ERROR_CODE_HEADER,
  isWardError,
} from '../api/errors.ts';
import { parseAs, type Kind, type Resource, SYSTEM_ROLES } from '../api/types.ts';
import { MAX_LIST_PAGE } from '../api/list.ts';
import type { ResourceService } from '../services/resources.ts';
import { ListingCache } from '../services/listing.ts';
import { identifyCaller, callerName, type Caller } from './authz.ts';
import {
  admit,
  authorize,
  type RequestOf,
  type ResponseOf,
  type UnaryHandler,
  type UnaryHandlers,
  type UnaryRPC,
} from './rpcauthz.ts';
import { resolveHostLock, revokeHost } from './hostlocks.ts';
import { withoutSecrets } from './keystore.ts';
import type { EventName } from '../events/catalog.ts';
import { authenticateUser } from './login.ts';
import {
  beginTOTP,
  deleteDevice,
  deviceName,
  finishTOTP,
  listDevices,
  proveExistingDevice,
  storeDevice,
} from './mfa.ts';
import { beginWebAuthnRegistration, verifyNewWebAuthn } from './webauthn.ts';
import { heartbeat, NODE_TTL_MS, registerUsingToken } from './join.ts';
import { renewHostSSHCert, renewHostTLSCert, subjectAltNames, tlsRenewalFor } from './renew.ts';
import { heartbeatSession, recordingStore, uploadRecording } from './sessions.ts';
import { MAX_CHUNK_BYTES } from '../events/recordings.ts';
import type { AuthServer } from './server.ts';
import { certsMessage } from './wire.ts';
import { PHASES, type RotationPhase } from '../api/rotation.ts';
import { VERSION } from './server.ts';
import { watchResources } from './watch.ts';
import { webHandlers } from './api-web.ts';
import type { HeartbeatStreamOptions } from './heartbeatstream.ts';
import { createUserToken, getUserToken } from './usertokens.ts';
import { DEFAULT_JOIN_RULE, JoinLimits } from './joinlimits.ts';
import type { BucketRule } from '../ratelimit/buckets.ts';
import type { Registry } from 'prom-client';

export const socketKey = createContextKey<TLSSocket | undefined>(undefined);
/** The client's address: the TCP peer's, or the one a proxy vouched for in its signed header (connsource.ts). */
export const clientAddrKey = createContextKey<string>('');

const MAX_TTL_SECONDS = 30 * 86_400;
const MAX_AGENT_EVENTS = 1000;
const MAX_AGENT_EVENT_BYTES = 16 * 1024;

function toRPCError(err: unknown, log: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isWardError(err)) return new ConnectError(err.message, err.rpcCode, { [ERROR_CODE_HEADER]: err.code });
  log.error({ err }, 'internal error in auth API');
  // Without the code header, as always: a client takes it as a server it cannot use, and may try another.
  const internal = new Internal('internal error in the auth server (see its log)');
  return new ConnectError(internal.message, internal.rpcCode);
}

/** The names (SANs) of a connection's certificate, read once per connection (a host heartbeats on it for hours). */
const certNamesOf = new WeakMap<TLSSocket, ReadonlySet<string>>();
function peerCertNames(socket: TLSSocket | undefined): ReadonlySet<string> {
  if (!socket) return new Set();
  let names = certNamesOf.get(socket);
  if (!names) {
    names = subjectAltNames(socket.getPeerCertificate(false)?.subjectaltname);
    certNamesOf.set(socket, names);
  }
  return names;
}

function socketCaller(auth: AuthServer, socket: TLSSocket | undefined): Promise<Caller> {
  return socket ? identifyCaller(auth, socket) : Promise.resolve({ kind: 'anonymous', reason: 'no TLS connection' });
}

/**
 * One message of a HeartbeatStream, for Connect's handler below and the listener's own (heartbeatstream.ts). The
 * caller is read again at every message: a certificate that ended, or was replaced by a renewal, while the stream
 * stayed open is refused as a new call would be (identifyCaller checks the expiry).
 */
async function heartbeatStreamMessage(
  auth: AuthServer,
  socket: TLSSocket | undefined,
  req: RequestOf<'heartbeatStream'>,
): Promise<{ expires: string }> {
  const { who, on } = authorize('heartbeatStream', await socketCaller(auth, socket), req);
  const stored = await heartbeat(auth, who.name, parseAs(on.kind, on.data), peerCertNames(socket));
  return { expires: stored.metadata.expires ?? '' };
}

/**
 * A heartbeat message carries one node or proxy: 256 KiB is room for hundreds of labels. (The request limit,
 * 4 MiB, would let one host hold 4 GiB of the auth server with a message begun on each of 1,000 streams.)
 */
const MAX_HEARTBEAT_MESSAGE_BYTES = 256 * 1024;

/** What the listener's own HeartbeatStream path (heartbeatstream.ts) calls: the same checks as Connect's handler. */
export function heartbeatStreamHandling(auth: AuthServer, log: Logger): HeartbeatStreamOptions {
  return {
    admit: async (socket) => void admit('heartbeatStream', await socketCaller(auth, socket)),
    answer: (socket, req) => heartbeatStreamMessage(auth, socket, req),
    toRPCError: (err) => toRPCError(err, log),
    maxMessageBytes: MAX_HEARTBEAT_MESSAGE_BYTES,
    idleMs: NODE_TTL_MS,
  };
}

function ttlMs(seconds: number, fallbackMs: number): number {
  if (seconds > MAX_TTL_SECONDS) throw new BadParameter('TTL is too long (at most 30 days)');
  return seconds > 0 ? seconds * 1000 : fallbackMs;
}

/** What a resource looks like to a caller: CA private keys never leave the auth server. */
function present(resource: Resource): string {
  return JSON.stringify(resource.kind === 'cert_authority' ? withoutSecrets(resource) : resource);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** How far ahead of the auth server's clock an agent's event time may be (clock skew). */
const MAX_AGENT_CLOCK_AHEAD_MS = 5 * 60_000;

/**
 * An agent spools events and may send them long after (it was down, or auth was): keep the time it
 * saw them and the uid it gave them (a resent event keeps its uid), within reason.
 */
function agentEventStamp(uid: unknown, time: unknown, now: Date): { uid?: string; time?: Date } {
  const at: { uid?: string; time?: Date } = {};
  if (typeof uid === 'string' && UUID.test(uid)) at.uid = uid;
  if (typeof time === 'string') {
    const t = new Date(time);
    if (!Number.isNaN(t.getTime()) && t.getTime() <= now.getTime() + MAX_AGENT_CLOCK_AHEAD_MS) at.time = t;
  }
  return at;
}

/** The auth server's limit on joins (joinlimits.ts), from auth_service.rate_limits. */
export interface AuthRouteOptions {
  joinRule?: BucketRule;
  metrics?: Registry;
}

export function authRoutes(auth: AuthServer, log: Logger, opts: AuthRouteOptions = {}) {
  const service = (kind: Kind) => auth.stores.resources(kind);
  const joinLimits = new JoinLimits(opts.joinRule ?? DEFAULT_JOIN_RULE, {
    clock: { now: () => auth.now() },
    log,
    audit: (fields) => auth.audit.emit('auth.rate_limited', fields),
    metrics: opts.metrics,
  });
  const listings = new ListingCache(present);
  const caller = (ctx: HandlerContext): Promise<Caller> => socketCaller(auth, ctx.values.get(socketKey));
  // Every unary call runs its entry in the authorization table (rpcauthz.ts) first; the handler gets the grant.
  const unary =
    <M extends UnaryRPC>(method: M, handle: UnaryHandler<M>) =>
    async (req: RequestOf<M>, ctx: HandlerContext): Promise<ResponseOf<M>> => {
      let who: Caller | undefined;
      try {
        who = await caller(ctx);
        return await handle(req, authorize(method, who, req), ctx);
      } catch (err) {
        if (err instanceof AccessDenied && who?.kind === 'user') {
          await auditDenial(who.name, ctx.method.name, err.message);
        }
        throw toRPCError(err, log);
      }
    };
  // A user refused by their roles is audited with the reason (which role denies, or that none allows).
  // Callers without a valid certificate are not: they are refused before anything is read, and
  // auditing them would let anyone fill the log.
  const auditDenial = (user: string, method: string, reason: string): Promise<void> =>
    auth.audit.emit('access.denied', { user, action: method, reason }).then(
      () => undefined,
      () => undefined, // the call is refused either way; the audit log's own failure is logged there
    );

  const handlers: UnaryHandlers = {
    ping: async (_req, { on }) => ({
      clusterName: auth.clusterName,
      serverVersion: VERSION,
      caPins: await auth.tlsCAPins(),
      backend: on.signedIn ? auth.backend.kind : '',
      secondFactor: auth.secondFactor,
    }),

    getResource: async (req, { on: kind, visible }) => {
      const resource = await service(kind).get(req.name);
      // Hidden as a missing one is: the answer never tells that a resource the caller may not see exists.
      if (visible && !visible(resource)) throw new NotFound(`${kind} "${req.name}" not found`);
      return { json: present(resource) };
    },

    listResources: async (req, { on: { kind, ownSessionsOnly }, visible }) => {
      const limit = Math.min(req.limit || 1000, MAX_LIST_PAGE);
      // The page goes to a client that checks each resource; only a filter on the spec needs it checked here.
      // One more than asked for tells whether another page exists, so a full last page ends the listing
      // instead of sending the client back for an empty one.
      const page = { limit: limit + 1, startAfter: req.startAfter || undefined };
      let listed = ownSessionsOnly
        ? (await service(kind).list(page)).map((resource) => ({ resource, json: present(resource) }))
        : await service(kind).listForClient(page, listings);
      const more = listed.length > limit;
      if (more) listed = listed.slice(0, limit);
      const nextKey = more ? listed.at(-1)!.resource.metadata.name : '';
      if (visible) listed = listed.filter(({ resource }) => visible(resource));
      // Packed: the cached JSON of each resource joined into one array, for clients that list thousands.
      if (req.packed) return { packedJson: `[${listed.map(({ json }) => json).join(',')}]`, nextKey };
      return { resources: listed.map(({ json }) => ({ json })), nextKey };
    },

    upsertResource: async (req, { who, on: resource }) => {
      if (resource.kind === 'user') {
        await auth.loadRoles(resource.spec.roles).catch(() => {
          throw new BadParameter(
            `user "${resource.metadata.name}" names a role that does not exist: create the role first`,
          );
        });
      }
      let stored: Resource = resource;
      if (resource.kind === 'lock') {
        resource.spec.created_by = callerName(who);
        resource.spec.created = auth.now().toISOString();
        stored = await resolveHostLock(auth, resource);
      }
      const store = service(stored.kind) as ResourceService<typeof stored.kind>;
      const saved = req.overwrite ? await store.upsert(stored as never) : await store.create(stored as never);
      const by = callerName(who);
      if (saved.kind === 'lock') {
        const { target, message } = saved.spec;
        const { name, expires } = saved.metadata;
        await auth.audit.emit('lock.created', { user: by, name, target, message, expires });
      } else {
        const { name } = resource.metadata;
        if (resource.kind === 'role') await auth.audit.emit('role.created', { user: by, name });
        else if (resource.kind === 'user') {
          await auth.audit.emit(req.overwrite ? 'user.update' : 'user.create', { user: by, name });
        } else await auth.audit.emit('resource.created', { user: by, kind: resource.kind, name });
      }
      return { json: present(saved) };
    },

    deleteResource: async (req, { who, on: kind }) => {
      if (kind === 'role') {
        const holders = (await auth.users.list())
          .filter((u) => u.spec.roles.includes(req.name))
          .map((u) => u.metadata.name);
        if (holders.length) {
          const named = `${holders.slice(0, 5).join(', ')}${holders.length > 5 ? '…' : ''}`;
          throw new BadParameter(`role "${req.name}" is still assigned to ${named}: remove it from them first`);
        }
      }
      const by = callerName(who);
      if (kind === 'user') await auth.deleteUser(req.name, by);
      else if (kind === 'node' || kind === 'proxy') await revokeHost(auth, kind, req.name, by);
      else {
        await service(kind).delete(req.name);
        if (kind === 'lock') await auth.audit.emit('lock.deleted', { user: by, name: req.name });
        else if (kind === 'role') await auth.audit.emit('role.deleted', { user: by, name: req.name });
        else await auth.audit.emit('resource.deleted', { user: by, kind, name: req.name });
      }
      return {};
    },

    createUser: async (req, { who }) => {
      const { user, generatedPassword } = await auth.createUser({
        name: req.name,
        roles: req.roles,
        logins: req.logins,
        password: req.password || undefined,
        createdBy: callerName(who),
      });
      // An invited user's generated password is never shown: only the link lets them set one.
      if (req.invite) {
        const link = await createUserToken(auth, req.name, 'invite', callerName(who));
        return { user: { json: present(user) }, inviteToken: link.token, inviteExpires: link.expires };
      }
      return { user: { json: present(user) }, generatedPassword };
    },

    resetPassword: async (req, { who }) => {
      if (req.asLink) {
        // The old password stops working now (replaced by one nobody sees); the link sets the next.
        await auth.resetPassword(req.name, undefined, callerName(who));
        const link = await createUserToken(auth, req.name, 'reset', callerName(who));
        return { resetToken: link.token, resetExpires: link.expires };
      }
      return { generatedPassword: await auth.resetPassword(req.name, req.password || undefined, callerName(who)) };
    },

    createToken: async (req, { who }) => {
      const roles = req.roles.map((r) => {
        if (!(SYSTEM_ROLES as readonly string[]).includes(r)) {
          throw new BadParameter(`unknown token type "${r}" (expected ${SYSTEM_ROLES.join(', ')})`);
        }
        return r as (typeof SYSTEM_ROLES)[number];
      });
      if (roles.length === 0) throw new BadParameter('a token needs at least one type');
      const ttl = ttlMs(req.ttlSeconds, 30 * 60_000);
      const token = await auth.createToken({ roles, ttlMs: ttl, labels: req.labels, by: callerName(who) });
      return { json: present(token) };
    },

    authenticateUser: async (req) => {
      const certs = await authenticateUser(auth, {
        user: req.user,
        password: req.password,
        sshPublicKey: req.sshPublicKey,
        tlsPublicKey: req.tlsPublicKey,
        ttlMs: ttlMs(req.ttlSeconds, 12 * 3_600_000),
        clientAddr: req.clientAddr,
        secondFactor: req.secondFactor || undefined,
      });
      return certsMessage(certs);
    },

    generateUserCerts: async (req, { who, on }) => {
      const maxMs = on.notAfterMs - auth.now().getTime();
      const user = await auth.getUserOrDeny(req.user);
      const keys = { sshPublicKey: req.sshPublicKey, tlsPublicKey: req.tlsPublicKey };
      const ttl = Math.min(ttlMs(req.ttlSeconds, 3_600_000), maxMs);
      return certsMessage(await auth.issueUserCerts(user, keys, ttl, callerName(who)));
    },

    exportCAs: async (req) => ({ entries: await auth.exportCAs(req.type) }),

    // The caller's TLS certificate (verified by the handshake, its dates by authz.ts) says what may be renewed and
    // for whom (renew.ts), so this reads it off the connection.
    renewHostCerts: async (req, { who: c }, ctx) => {
      if (!req.sshCert && !req.tlsPublicKey) {
        throw new BadParameter('nothing to renew: give the SSH host certificate, the TLS public key or both');
      }
      const peer = ctx.values.get(socketKey)?.getPeerCertificate(false);
      // Both requests are checked before either certificate is issued: a refused call gets nothing.
      const tlsRenewal = req.tlsPublicKey ? tlsRenewalFor(peer?.raw, { tlsPublicKey: req.tlsPublicKey }) : undefined;
      const ssh = req.sshCert
        ? await renewHostSSHCert(auth, c.name, subjectAltNames(peer?.subjectaltname), { sshCert: req.sshCert })
        : undefined;
      const tls = tlsRenewal
        ? await renewHostTLSCert(auth, { hostId: c.name, systemRoles: c.systemRoles }, tlsRenewal)
        : undefined;
      return {
        sshCert: ssh?.sshCert ?? '',
        sshHostCas: ssh?.sshHostCas ?? [],
        tlsCert: tls?.tlsCert ?? '',
        tlsCas: tls?.tlsCas ?? [],
      };
    },

    rotateCertAuthority: async (req, { who }) => {
      let move: { target: RotationPhase } | { rollback: true };
      if (req.rollback) move = { rollback: true };
      else if ((PHASES as readonly string[]).includes(req.phase)) move = { target: req.phase as RotationPhase };
      else {
        const expected = `${PHASES.slice(1).join(', ')} or standby`;
        throw new BadParameter(`unknown rotation phase "${req.phase}" (expected ${expected})`);
      }
      return { json: present(await auth.rotateCA(req.type, move, callerName(who))) };
    },

    // Each event names its emitter, the host id of the caller's certificate, whatever the host wrote: the rest of
    // the event (user, login, command...) is that host's own account.
    emitAuditEvents: async (req, { who: c, on: { reportable, role } }) => {
      if (req.events.length > MAX_AGENT_EVENTS) throw new LimitExceeded(`at most ${MAX_AGENT_EVENTS} events per call`);
      const events = req.events.map((text) => {
        if (text.length > MAX_AGENT_EVENT_BYTES) throw new LimitExceeded('audit event too large');
        let data: unknown;
        try {
          data = JSON.parse(text);
        } catch {
          throw new BadParameter('audit event is not valid JSON');
        }
        if (typeof data !== 'object' || data === null || Array.isArray(data)) {
          throw new BadParameter('audit event is not a JSON object');
        }
        // What the auth server sets is dropped, whatever the host wrote there.
        const {
          event,
          code: _c,
          uid,
          cluster: _cl,
          time,
          server_id: _s,
          emitter: _e,
          emitter_role: _r,
          ...fields
        } = data as Record<string, unknown>;
        if (typeof event !== 'string' || !reportable.has(event)) {
          throw new BadParameter(`a ${role} may not report "${String(event)}" events`);
        }
        return { event: event as EventName, fields, at: agentEventStamp(uid, time, auth.now()) };
      });
      const emitter = { server_id: c.name, emitter: c.name, emitter_role: role };
      for (const e of events) await auth.audit.emit(e.event, { ...e.fields, ...emitter }, e.at);
      return {};
    },

    // UseUserToken finishes a registration a proxy began for the user of a link.
    beginMFARegistration: async (req, { on }) => {
      const user = on.user !== undefined ? on.user : (await getUserToken(auth, on.viaLink)).user;
      if (req.type === 'totp') return beginTOTP(auth, user, !!req.userToken);
      if (req.type === 'webauthn') {
        return { webauthnOptions: await beginWebAuthnRegistration(auth, user, !!req.userToken) };
      }
      throw new BadParameter(`cannot register a "${req.type}" device (expected totp or webauthn)`);
    },

    finishMFARegistration: async (req, { who: c }) => {
      if (req.type === 'totp') {
        const existingCode = req.existingCode || undefined;
        const totp = { name: req.name, code: req.code, existingCode };
        const { device, recoveryCodes } = await finishTOTP(auth, c.name, totp);
        return { deviceId: device.id, recoveryCodes };
      }
      if (req.type !== 'webauthn') {
        throw new BadParameter(`cannot register a "${req.type}" device (expected totp or webauthn)`);
      }
      const name = deviceName(req.name, 'security key');
      await proveExistingDevice(auth, c.name, name, req.existingCode || undefined);
      const device = await verifyNewWebAuthn(auth, c.name, name, req.webauthnResponse);
      const { recoveryCodes } = await storeDevice(auth, c.name, device, { replace: false });
      return { deviceId: device.id, recoveryCodes };
    },

    listMFADevices: async (_req, { who: c }) => ({ devices: await listDevices(auth, c.name) }),

    deleteMFADevice: async (req, { who: c }) => {
      await deleteDevice(auth, c.name, req.device, c.name);
      return {};
    },

    uploadRecording: async (req, { who: c }) => uploadRecording(auth, c.name, req),

    getRecording: async (req) => {
      const store = recordingStore(auth);
      const r = store.read(req.sid, Number(req.offset), req.limit || MAX_CHUNK_BYTES);
      return { data: r.data, size: BigInt(r.size), complete: r.complete };
    },

    registerUsingToken: async (req, _call, ctx) => {
      // The token is the credential, so joins are rate limited before it is looked up.
      // The client's address is the TCP peer's, or the one a proxy vouched for (connsource.ts): loopback names
      // are issued only when it is this machine (joinnames.ts).
      const socket = ctx.values.get(socketKey);
      const remoteAddr = ctx.values.get(clientAddrKey);
      joinLimits.admitJoin(remoteAddr, socket ?? ctx);
      return registerUsingToken(auth, {
        token: req.token,
        systemRole: req.systemRole,
        hostname: req.hostname,
        addresses: req.addresses,
        sshPublicKey: req.sshPublicKey,
        tlsPublicKey: req.tlsPublicKey,
        remoteAddr,
      });
    },

    heartbeat: async (req, { who: c, on }, ctx) => {
      if (on.kind === 'session_tracker') {
        const tracker = parseAs('session_tracker', on.data);
        return { json: present(await heartbeatSession(auth, c.name, tracker, req.remove)) };
      }
      const stored = await heartbeat(auth, c.name, parseAs(on.kind, on.data), peerCertNames(ctx.values.get(socketKey)));
      return { json: present(stored) };
    },

    searchEvents: async (req) => {
      const date = (s: string) => {
        if (!s) return undefined;
        const d = new Date(s);
        if (Number.isNaN(d.getTime())) throw new BadParameter(`invalid time "${s}"`);
        return d;
      };
      const events = await auth.audit.search({
        from: date(req.from),
        to: date(req.to),
        types: req.types.length ? req.types : undefined,
        user: req.user || undefined,
        sid: req.sid || undefined,
        limit: Math.min(req.limit || 1000, 10_000),
        order: req.order === 'asc' ? 'asc' : 'desc',
      });
      return { events: events.map((e) => JSON.stringify(e)) };
    },

    ...webHandlers(auth),
  };
  const unaryMethods = Object.fromEntries(
    Object.entries(handlers).map(([m, handle]) => [m, unary(m as UnaryRPC, handle as UnaryHandler<UnaryRPC>)]),
  ) as { [M in UnaryRPC]: (req: RequestOf<M>, ctx: HandlerContext) => Promise<ResponseOf<M>> };

  return (router: ConnectRouter) =>
    router.service(AuthService, {
      ...unaryMethods,

      // Ward's own clients are served by the listener's lean path (heartbeatstream.ts); this serves the rest (JSON,
      // compressed requests).
      async *heartbeatStream(reqs, ctx) {
        try {
          for await (const req of reqs) yield await heartbeatStreamMessage(auth, ctx.values.get(socketKey), req);
        } catch (err) {
          throw toRPCError(err, log);
        }
      },

      async *watch(req, ctx) {
        try {
          const { on: kinds, visible } = authorize('watch', await caller(ctx), req);
          // Still signed in (a certificate that ended, a user locked or deleted) while the stream stays open.
          const guard = { visible, recheck: async () => void admit('watch', await caller(ctx)) };
          for await (const event of watchResources(auth, kinds, ctx.signal, guard)) {
            yield {
              type: event.type,
              kind: event.kind ?? '',
              name: event.name ?? '',
              resource: event.resource ? { json: present(event.resource) } : undefined,
            };
          }
        } catch (err) {
          throw toRPCError(err, log);
        }
      },
    });
}
