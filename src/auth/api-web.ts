// The Auth API methods behind the proxies' web front: web sessions and invite/reset links. Only a
// proxy may call them (it holds the browser's secret; the auth server never sees it): rpcauthz.ts says so.
import type { CreateWebSessionRequest } from '../api/gen/ward/auth/v1/auth_pb.ts';
import { BadParameter } from '../api/errors.ts';
import type { UnaryHandlers } from './rpcauthz.ts';
import { beginLoginChallenge } from './login.ts';
import { certsMessage } from './wire.ts';
import type { AuthServer } from './server.ts';
import { getUserToken, useUserToken } from './usertokens.ts';
import { createAuthenticateChallenge } from './webauthn.ts';
import {
  createWebSession,
  createWebSessionAfterLink,
  deleteWebSession,
  getWebSession,
  type StoredWebSession,
} from './websessions.ts';

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

type WebRPC =
  | 'createWebSession'
  | 'getWebSession'
  | 'deleteWebSession'
  | 'getUserToken'
  | 'useUserToken'
  | 'createAuthenticateChallenge';

export function webHandlers(auth: AuthServer): Pick<UnaryHandlers, WebRPC> {
  return {
    createWebSession: async (req) => {
      const { user, password, secondFactor } = req;
      const session = await createWebSession(auth, { ...webSessionFields(req), user, password, secondFactor });
      return webSessionMessage(session);
    },

    getWebSession: async (req) => webSessionMessage(await getWebSession(auth, req.idHash)),

    deleteWebSession: async (req) => {
      await deleteWebSession(auth, req.idHash);
      return {};
    },

    getUserToken: async (req) => getUserToken(auth, req.token),

    useUserToken: async (req) => {
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
      const webSession = session
        ? webSessionMessage(await createWebSessionAfterLink(auth, used.user, method, session))
        : undefined;
      return { user: used.user, recoveryCodes: used.recoveryCodes, webSession };
    },

    // A signed-in user asks for their own devices (to prove one before adding another); a proxy asks for a
    // sign-in, with the password.
    createAuthenticateChallenge: async (req, { on }) => {
      if (on.ownDevicesOf) return createAuthenticateChallenge(auth, on.ownDevicesOf, true);
      return beginLoginChallenge(auth, { user: req.user, password: req.password, clientAddr: req.clientAddr });
    },
  };
}
