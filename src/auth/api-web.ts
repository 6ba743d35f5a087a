// The Auth API methods behind the proxies' web front: web sessions and invite/reset links. Only a
// proxy may call them (it holds the browser's secret; the auth server never sees it).
import type { HandlerContext } from '@connectrpc/connect';
import type {
  CreateAuthenticateChallengeRequest,
  CreateWebSessionRequest,
  DeleteWebSessionRequest,
  GetUserTokenRequest,
  GetWebSessionRequest,
  UseUserTokenRequest,
} from '../api/gen/ward/auth/v1/auth_pb.ts';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { requireAuthenticated, requireSystemRole, type Caller } from './authz.ts';
import { beginLoginChallenge } from './login.ts';
import { certsMessage } from './wire.ts';
import type { AuthServer } from './server.ts';
import { getUserToken, useUserToken } from './usertokens.ts';
import { createAuthenticateChallenge } from './webauthn.ts';
import { createWebSession, createWebSessionAfterLink, deleteWebSession, getWebSession, type StoredWebSession } from './websessions.ts';

type Unary = <Req, Res>(fn: (req: Req, who: Caller) => Promise<Res>) => (req: Req, ctx: HandlerContext) => Promise<Res>;

const MAX_WEB_TTL_SECONDS = 30 * 3600;

/** The web-session fields of a request (the same shape in CreateWebSession and UseUserToken). */
function webSessionFields(req: CreateWebSessionRequest) {
  if (req.ttlSeconds > MAX_WEB_TTL_SECONDS) throw new BadParameter('web session TTL is too long (at most 30h)');
  return {
    sshPublicKey: req.sshPublicKey,
    tlsPublicKey: req.tlsPublicKey,
    ttlMs: (req.ttlSeconds || 12 * 3600) * 1000,
    clientAddr: req.clientAddr,
    idHash: req.idHash,
    sealedKeys: req.sealedKeys,
    idleTimeoutMs: req.idleTimeoutSeconds * 1000,
  };
}

function webSessionMessage(s: StoredWebSession) {
  return {
    user: s.record.user,
    certs: certsMessage(s.certs),
    sealedKeys: Buffer.from(s.record.sealed_keys, 'base64'),
    expires: s.record.expires,
    lastActive: s.record.last_active,
    idleTimeoutSeconds: Math.round(s.record.idle_timeout_ms / 1000),
  };
}

export function webMethods(auth: AuthServer, unary: Unary) {
  return {
    createWebSession: unary(async (req: CreateWebSessionRequest, who) => {
      requireSystemRole(who, 'proxy');
      const session = await createWebSession(auth, { ...webSessionFields(req), user: req.user, password: req.password, secondFactor: req.secondFactor });
      return webSessionMessage(session);
    }),

    getWebSession: unary(async (req: GetWebSessionRequest, who) => {
      requireSystemRole(who, 'proxy');
      return webSessionMessage(await getWebSession(auth, req.idHash));
    }),

    deleteWebSession: unary(async (req: DeleteWebSessionRequest, who) => {
      requireSystemRole(who, 'proxy');
      await deleteWebSession(auth, req.idHash);
      return {};
    }),

    getUserToken: unary(async (req: GetUserTokenRequest, who) => {
      requireSystemRole(who, 'proxy');
      return getUserToken(auth, req.token);
    }),

    useUserToken: unary(async (req: UseUserTokenRequest, who) => {
      requireSystemRole(who, 'proxy');
      // Checked before the link is used, so a malformed request does not cost the user their link.
      const session = req.webSession ? webSessionFields(req.webSession) : undefined;
      const used = await useUserToken(auth, {
        token: req.token,
        password: req.password,
        totpCode: req.secondFactor,
        webauthnResponse: req.webauthnResponse,
        deviceName: req.deviceName,
      });
      const method = used.factor ? `link+${used.factor}` : 'link';
      const webSession = session ? webSessionMessage(await createWebSessionAfterLink(auth, used.user, method, session)) : undefined;
      return { user: used.user, recoveryCodes: used.recoveryCodes, webSession };
    }),

    createAuthenticateChallenge: unary(async (req: CreateAuthenticateChallengeRequest, who) => {
      const c = requireAuthenticated(who);
      // A signed-in user asks for their own devices (to prove one before adding another); a proxy asks
      // for a sign-in, with the password.
      if (c.kind === 'user') {
        if (req.user && req.user !== c.name) throw new AccessDenied('a user asks for challenges for their own devices only');
        return createAuthenticateChallenge(auth, c.name, true);
      }
      requireSystemRole(who, 'proxy');
      return beginLoginChallenge(auth, { user: req.user, password: req.password, clientAddr: req.clientAddr });
    }),
  };
}
