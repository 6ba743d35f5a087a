// The Auth API's ConnectRPC dispatcher: identify the caller, run its entry in the authorization table (rpcauthz.ts),
// call the handler (api-*.ts, by domain). Errors become RPC statuses here (with the Ward code in a header), so a
// client gets a typed error and one clear line, never a stack trace.
import type { TLSSocket } from 'node:tls';
import { ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { AuthService } from '../api/gen/ward/auth/v1/auth_pb.ts';
import { AccessDenied, ERROR_CODE_HEADER, Internal, isWardError } from '../api/errors.ts';
import { parseAs } from '../api/types.ts';
import { ListingCache } from '../services/listing.ts';
import { identifyCaller, type Caller } from './authz.ts';
import {
  admit,
  authorize,
  type RequestOf,
  type ResponseOf,
  type UnaryHandler,
  type UnaryHandlers,
  type UnaryRPC,
} from './rpcauthz.ts';
import { heartbeat, NODE_TTL_MS } from './join.ts';
import type { AuthServer } from './server.ts';
import { present } from './wire.ts';
import { watchResources } from './watch.ts';
import { peerCertNames, socketKey } from './api-context.ts';
import { auditHandlers } from './api-audit.ts';
import { hostHandlers, type AuthRouteOptions } from './api-hosts.ts';
import { resourceHandlers } from './api-resources.ts';
import { userHandlers } from './api-users.ts';
import { webHandlers } from './api-web.ts';
import type { HeartbeatStreamOptions } from './heartbeatstream.ts';

export { clientAddrKey, socketKey } from './api-context.ts';
export type { AuthRouteOptions } from './api-hosts.ts';

function toRPCError(err: unknown, log: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isWardError(err)) return new ConnectError(err.message, err.rpcCode, { [ERROR_CODE_HEADER]: err.code });
  log.error({ err }, 'internal error in auth API');
  // Without the code header, as always: a client takes it as a server it cannot use, and may try another.
  const internal = new Internal('internal error in the auth server (see its log)');
  return new ConnectError(internal.message, internal.rpcCode);
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

export function authRoutes(auth: AuthServer, log: Logger, opts: AuthRouteOptions = {}) {
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
    ...userHandlers(auth),
    ...resourceHandlers(auth, listings),
    ...hostHandlers(auth, log, opts),
    ...auditHandlers(auth),
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
