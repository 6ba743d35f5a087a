// The proxy's HTTPS front: the web UI's files, its API (/webapi/…, acting as the signed-in user) and
// wsh's login. Bodies are size-limited and schema-checked; every error leaves as {error: {code, message}}
// with the status from the one error catalogue (src/api/errors.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { setTimeout } from 'node:timers/promises';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuthClient } from '../api/client.ts';
import {
  AccessDenied,
  BadParameter,
  BodyTooLarge,
  Internal,
  LimitExceeded,
  NotFound,
  NotSignedIn,
  isWardError,
  type WardError,
} from '../api/errors.ts';
import { describeZodError } from '../api/types.ts';
import {
  WEBAPI_LOGIN,
  WEBAPI_PING,
  loginRequestSchema,
  type CertsResponse,
  type SecondFactorMode,
  type WebInviteLink,
  type WebMe,
} from '../api/webapi.ts';
import type { ResourceCache } from '../cache/resources.ts';
import { AccessChecker } from '../rbac/checker.ts';
import type { EdgeLimits, LimitKind } from './edgelimits.ts';
import { routes } from './webroutes.ts';
import { deviceType, registrationAnswer, webauthnJSON } from './webmfa.ts';
import { SECURITY_HEADERS, type WebAssets } from './webstatic.ts';
import {
  CLEAR_SESSION_COOKIE,
  CSRF_HEADER,
  bearerFromCookie,
  checkCSRF,
  csrfToken,
  sessionCookie,
  type ActiveWebSession,
  type WebSessions,
} from './websession.ts';

const MAX_BODY = 64 * 1024;
const REFUSAL_DELAY_MS = 1_000;

/**
 * Which per-address limit a request counts against, if any: the calls anyone can make that cost the auth
 * server a password hash or a guess at a secret (sign-in, a security key's step one, adding a device with
 * a code from an existing one, invite and reset links).
 */
const SIGN_IN_PATHS = new Set([
  '/webapi/login/certs',
  '/webapi/sessions/web',
  '/webapi/mfa/login/begin',
  '/webapi/mfa/devices/finish',
]);

function limitOf(method: string, path: string): LimitKind | undefined {
  if (path.startsWith('/webapi/invites/')) return 'link';
  if (method !== 'POST') return undefined;
  return SIGN_IN_PATHS.has(path) ? 'sign_in' : undefined;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

async function readJSON(req: Req): Promise<unknown> {
  if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
    throw new BadParameter('expected a JSON body (Content-Type: application/json)');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new BodyTooLarge(`request body too large (at most ${MAX_BODY / 1024} KiB)`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadParameter('request body is not valid JSON');
  }
}

/** Reads a refused request's body to its end, or until MAX_BODY (then the answer closes the connection). */
async function discardBody(req: Req): Promise<void> {
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return;
  }
}

function send(req: Req, res: Res, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  // A refusal may come before the client has sent its whole body (one over MAX_BODY, say). We stop
  // reading it, so the client must learn that we will not: HTTP/1.1 closes the connection after the
  // answer; HTTP/2 resets the stream with NO_ERROR once the answer is out (RFC 9113 §8.1). Otherwise an
  // HTTP/2 client (curl) waits for the end of a stream that never ends, and holds it open.
  const unread = !req.complete;
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'strict-transport-security': 'max-age=31536000',
    ...extraHeaders,
    ...(unread && req.httpVersionMajor < 2 ? { connection: 'close' } : {}),
  });
  res.end(data);
  // close() right after end(): it waits for the answer to be written, then resets. (Waiting for 'finish'
  // is too late: Node has reset the stream with CANCEL by then, which curl never notices.)
  if (unread && 'stream' in res) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

const signInSchema = z.strictObject({
  user: z.string().min(1).max(128),
  password: z.string().max(1024),
  /** The second factor's slot (TOTP code or WebAuthn assertion), for when MFA exists. */
  second_factor: z
    .string()
    .max(16 * 1024)
    .optional(),
});
const inviteSchema = z.strictObject({
  password: z.string().max(1024),
  /** With a second factor required: a code from the new authenticator app, or the new security key's registration. */
  second_factor: z.string().max(64).optional(),
  webauthn_response: webauthnJSON.optional(),
  device_name: z.string().max(64).optional(),
});
const loginChallengeSchema = z.strictObject({ user: z.string().min(1).max(128), password: z.string().max(1024) });

export interface WebDeps {
  /** The proxy's own Auth API client (wsh login, web sign-in, invites). */
  auth: AuthClient;
  sessions: WebSessions;
  assets: WebAssets;
  /** Roles, to tell the UI which pages to offer. Display only: the auth server decides every call. */
  cache?: ResourceCache;
  /** Per-address rate limits on sign-ins and links (none: unlimited, for tests of other things). */
  limits?: EdgeLimits;
  log: Logger;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

/** The address the browser used, for links in answers; only host-name characters survive. */
function publicAddr(req: Req): string {
  const host = String(req.headers[':authority'] ?? req.headers.host ?? 'localhost');
  return host.replace(/[^A-Za-z0-9.:[\]-]/g, '');
}

/**
 * A state-changing request must come from a page of this origin: browsers send Origin on every
 * cross-origin POST and on fetches; one naming another host is refused before anything else.
 */
function checkOrigin(req: Req): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  if (origin !== `https://${publicAddr(req)}`) throw new AccessDenied('cross-origin request refused');
}

const SECOND_FACTOR_MODES: readonly string[] = ['off', 'otp', 'webauthn', 'on'] satisfies SecondFactorMode[];

/** The auth server's second_factor setting as the pages read it; unset means off, as on /webapi/ping. */
function secondFactorMode(value: string): SecondFactorMode {
  return SECOND_FACTOR_MODES.includes(value) ? (value as SecondFactorMode) : 'off';
}

function userView(session: ActiveWebSession, cache?: ResourceCache): WebMe {
  const roles = session.identity.roles.flatMap((name) => {
    const role = cache?.get('role', name);
    return role ? [role] : [];
  });
  const checker = new AccessChecker(roles, session.identity.traits ?? {});
  const may = (kind: string, verb: 'list' | 'create') => checker.checkRule(kind, verb).allowed;
  return {
    user: session.user,
    roles: session.identity.roles,
    logins: session.identity.logins,
    expires: session.expires,
    idle_timeout_seconds: session.idleTimeoutSeconds,
    csrf_token: csrfToken(session.bearer),
    acl: {
      nodes: may('node', 'list'),
      sessions: true, // everyone sees their own live sessions
      events: may('event', 'list'),
      recordings: may('session', 'list'),
      users: may('user', 'list'),
      roles: may('role', 'list'),
      tokens: may('token', 'list'),
    },
  };
}

export function webHandler(deps: WebDeps) {
  const { auth, sessions, assets, log } = deps;
  const clientAddr = (req: Req) => req.socket.remoteAddress ?? '';
  const signedIn = (session: ActiveWebSession) => {
    const expiresIn = (new Date(session.expires).getTime() - Date.now()) / 1000;
    return { body: userView(session, deps.cache), headers: { 'set-cookie': sessionCookie(session.bearer, expiresIn) } };
  };
  // Calls without a web session: ping, wsh's certificate login, sign-in and invite links.
  const open: Record<
    string,
    (req: Req, params: string[]) => Promise<{ body: unknown; headers?: Record<string, string> }>
  > = {
    [`GET ${WEBAPI_PING}`]: async () => {
      const ping = await auth.ping({});
      return {
        body: {
          cluster_name: ping.clusterName,
          server_version: ping.serverVersion,
          second_factor: ping.secondFactor || 'off',
        },
      };
    },
    [`POST ${WEBAPI_LOGIN}`]: async (req) => {
      const parsed = loginRequestSchema.safeParse(await readJSON(req));
      if (!parsed.success) throw new BadParameter(`invalid login request: ${describeZodError(parsed.error)}`);
      const body = parsed.data;
      const certs = await auth.authenticateUser({
        user: body.user,
        password: body.password,
        sshPublicKey: body.ssh_public_key,
        tlsPublicKey: body.tls_public_key,
        ttlSeconds: body.ttl_seconds,
        clientAddr: clientAddr(req),
        secondFactor: body.second_factor ?? '',
      });
      return {
        body: {
          ssh_cert: certs.sshCert,
          tls_cert: certs.tlsCert,
          tls_cas: certs.tlsCas,
          ssh_host_cas: certs.sshHostCas,
          cluster_name: certs.clusterName,
          ttl_seconds: certs.ttlSeconds,
        } satisfies CertsResponse,
      };
    },
    'POST /webapi/sessions/web': async (req) => {
      const parsed = signInSchema.safeParse(await readJSON(req));
      if (!parsed.success) throw new BadParameter(`invalid sign-in request: ${describeZodError(parsed.error)}`);
      const session = await sessions.signIn({
        user: parsed.data.user,
        password: parsed.data.password,
        secondFactor: parsed.data.second_factor,
        clientAddr: clientAddr(req),
      });
      return signedIn(session);
    },
    // Step one of a sign-in with a security key: the password is checked, and the key's challenge comes back.
    'POST /webapi/mfa/login/begin': async (req) => {
      const parsed = loginChallengeSchema.safeParse(await readJSON(req));
      if (!parsed.success) throw new BadParameter(`invalid request: ${describeZodError(parsed.error)}`);
      const r = await auth.createAuthenticateChallenge({
        user: parsed.data.user,
        password: parsed.data.password,
        clientAddr: clientAddr(req),
      });
      return {
        body: { webauthn_options: r.webauthnOptions ? (JSON.parse(r.webauthnOptions) as unknown) : null, totp: r.totp },
      };
    },
    'GET /webapi/invites/:token': async (_req, params) => {
      const [t, ping] = await Promise.all([auth.getUserToken({ token: params[0]! }), auth.ping({})]);
      const link: WebInviteLink = {
        user: t.user,
        type: t.type,
        expires: t.expires,
        second_factor: secondFactorMode(ping.secondFactor),
      };
      return { body: link };
    },
    // The link is the credential that lets its user register their first device (sign-up, or reset).
    'POST /webapi/invites/:token/mfa': async (req, params) => {
      const parsed = z.strictObject({ type: deviceType }).safeParse(await readJSON(req));
      if (!parsed.success) throw new BadParameter(`invalid request: ${describeZodError(parsed.error)}`);
      const r = await auth.beginMFARegistration({ type: parsed.data.type, userToken: params[0]! });
      return { body: await registrationAnswer(parsed.data.type, r) };
    },
    'POST /webapi/invites/:token': async (req, params) => {
      const parsed = inviteSchema.safeParse(await readJSON(req));
      if (!parsed.success) throw new BadParameter(`invalid request: ${describeZodError(parsed.error)}`);
      // Signed in at once: the auth server sets the password, registers the device and makes the session in one call.
      const { session, recoveryCodes } = await sessions.signInWithLink({
        token: params[0]!,
        password: parsed.data.password,
        totpCode: parsed.data.second_factor ?? '',
        webauthnResponse: parsed.data.webauthn_response ?? '',
        deviceName: parsed.data.device_name ?? '',
        clientAddr: clientAddr(req),
      });
      const r = signedIn(session);
      // Shown once by the page; never stored by the proxy.
      return { ...r, body: { ...r.body, recovery_codes: recoveryCodes } };
    },
  };
  const openRoute = (method: string, path: string) => {
    const invite = /^\/webapi\/invites\/([0-9a-f]{1,128})(\/mfa)?$/.exec(path);
    if (invite) return { fn: open[`${method} /webapi/invites/:token${invite[2] ?? ''}`], params: [invite[1]!] };
    return { fn: open[`${method} ${path}`], params: [] };
  };

  return async (req: Req, res: Res) => {
    const url = new URL(req.url ?? '/', 'https://proxy.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    try {
      if (!path.startsWith('/webapi/')) return serveStatic(req, res, assets, path);
      if (STATE_CHANGING.has(method)) checkOrigin(req);
      const limit = limitOf(method, path);
      if (limit && deps.limits) {
        const verdict = deps.limits.admit(limit, clientAddr(req));
        if (!verdict.allowed) {
          // The small body is read and dropped, so the connection stays open for the client's next request: a
          // refusal that closed it made every refused request of a flood cost the proxy a new TLS handshake.
          await discardBody(req);
          // Answered a second late: a client over its limit must wait anyway, and a flood that does not then
          // sends one request per second per connection instead of hundreds (measured: 650/s of prompt 429s
          // from one attacker's 10 connections nearly tripled a real user's sign-in time).
          await setTimeout(REFUSAL_DELAY_MS);
          // 429 with Retry-After (RFC 6585 §4), refused before the body is read.
          const retryAfterSeconds = verdict.retryAfterSeconds;
          const message = `too many requests from your address: try again in ${retryAfterSeconds}s`;
          throw new LimitExceeded(message, { retryAfterSeconds });
        }
      }
      const o = openRoute(method, path);
      if (o.fn) {
        const r = await o.fn(req, o.params);
        return send(req, res, 200, r.body, r.headers);
      }
      // An unknown endpoint is a 404 for everyone, signed in or not.
      if (path !== '/webapi/sessions/web/current' && !routes.some((r) => r.path.test(path)))
        throw new NotFound(`no such endpoint: ${method} ${path}`);
      // Everything else acts as the signed-in user.
      const bearer = bearerFromCookie(req.headers.cookie);
      let session: ActiveWebSession;
      try {
        session = await sessions.authenticate(bearer);
      } catch (err) {
        throw isWardError(err) && err.code === 'ERR_ACCESS_DENIED' ? new NotSignedIn(err.message) : err;
      }
      if (STATE_CHANGING.has(method)) checkCSRF(session.bearer, headerValue(req.headers[CSRF_HEADER]));
      if (path === '/webapi/sessions/web/current') {
        if (method === 'GET') return send(req, res, 200, userView(session, deps.cache));
        if (method === 'DELETE') {
          await sessions.signOut(session);
          return send(req, res, 200, {}, { 'set-cookie': CLEAR_SESSION_COOKIE });
        }
      }
      for (const route of routes) {
        if (route.method !== method) continue;
        const m = route.path.exec(path);
        if (!m) continue;
        const body = await route.handle({
          session,
          params: m.slice(1),
          query: url.searchParams,
          body: () => readJSON(req),
          publicAddr: publicAddr(req),
        });
        return send(req, res, 200, body);
      }
      throw new NotFound(`no such endpoint: ${method} ${path}`);
    } catch (caught) {
      if (!isWardError(caught)) log.error({ err: caught }, 'web API error');
      const err = isWardError(caught) ? caught : new Internal('internal error in the proxy (see its log)');
      send(req, res, err.httpStatus, { error: { code: err.code, message: err.message } }, errorHeaders(err));
    }
  };
}

/** What an error's answer carries besides its status and body. */
function errorHeaders(err: WardError): Record<string, string> {
  const headers: Record<string, string> = {};
  // A 401 means the browser holds no live session: clear the cookie, and the page shows the sign-in form.
  if (err.httpStatus === 401) headers['set-cookie'] = CLEAR_SESSION_COOKIE;
  const retryAfter = err instanceof LimitExceeded ? err.retryAfterSeconds : undefined;
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  return headers;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function serveStatic(req: Req, res: Res, assets: WebAssets, path: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new NotFound(`no such endpoint: ${req.method} ${path}`);
  if (path === '/' || path === '/web') {
    res.writeHead(302, { location: '/web/', ...SECURITY_HEADERS });
    res.end();
    return;
  }
  const file = assets.lookup(path);
  if (!file) {
    const msg = assets.built ? 'not found' : 'the web UI is not built in this installation (npm run build)';
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
    res.end(msg + '\n');
    return;
  }
  res.writeHead(200, { ...file.headers, 'content-length': String(file.body.length) });
  if (req.method === 'HEAD') res.end();
  else res.end(file.body);
}
