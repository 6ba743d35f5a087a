// The Auth API methods behind the proxies' web front: web sessions and invite/reset links. Only a
// proxy may call them (it holds the browser's secret; the auth server never sees it).
import type { HandlerContext } from '@connectrpc/connect';
import type {
  CreateWebSessionRequest,
  DeleteWebSessionRequest,
  GetUserTokenRequest,
  GetWebSessionRequest,
  UseUserTokenRequest,
} from '../api/gen/ward/auth/v1/auth_pb.ts';
import { BadParameter } from '../api/errors.ts';
import { requireSystemRole, type Caller } from './authz.ts';
import type { AuthServer } from './server.ts';
import { getUserToken, useUserToken } from './usertokens.ts';
import { createWebSession, deleteWebSession, getWebSession, type StoredWebSession } from './websessions.ts';

type Unary = <Req, Res>(fn: (req: Req, who: Caller) => Promise<Res>) => (req: Req, ctx: HandlerContext) => Promise<Res>;

const MAX_WEB_TTL_SECONDS = 30 * 3600;

function webSessionMessage(s: StoredWebSession) {
  const c = s.certs;
  return {
    user: s.record.user,
    certs: {
      sshCert: c.sshCert,
      tlsCert: c.tlsCert,
      tlsCas: c.tlsCAs,
      sshHostCas: c.sshHostCAs,
      clusterName: c.clusterName,
      ttlSeconds: Math.round(c.ttlMs / 1000),
    },
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
      if (req.ttlSeconds > MAX_WEB_TTL_SECONDS) throw new BadParameter('web session TTL is too long (at most 30h)');
      const session = await createWebSession(auth, {
        user: req.user,
        password: req.password,
        secondFactor: req.secondFactor,
        sshPublicKey: req.sshPublicKey,
        tlsPublicKey: req.tlsPublicKey,
        ttlMs: (req.ttlSeconds || 12 * 3600) * 1000,
        clientAddr: req.clientAddr,
        idHash: req.idHash,
        sealedKeys: req.sealedKeys,
        idleTimeoutMs: req.idleTimeoutSeconds * 1000,
      });
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
      return { user: await useUserToken(auth, req.token, req.password, req.secondFactor) };
    }),
  };
}
