// The Auth API's handlers for people and their certificates: cluster facts before sign-in, users and passwords,
// sign-in and certificate issue, the CAs and their rotation, and MFA devices.
import { BadParameter } from '../api/errors.ts';
import { PHASES, type RotationPhase } from '../api/rotation.ts';
import { callerName } from './authz.ts';
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
import type { UnaryHandlers } from './rpcauthz.ts';
import { type AuthServer, VERSION } from './server.ts';
import { createUserToken, getUserToken } from './usertokens.ts';
import { beginWebAuthnRegistration, verifyNewWebAuthn } from './webauthn.ts';
import { certsMessage, present, ttlMs } from './wire.ts';

type UserRPC =
  | 'ping'
  | 'createUser'
  | 'resetPassword'
  | 'authenticateUser'
  | 'generateUserCerts'
  | 'exportCAs'
  | 'rotateCertAuthority'
  | 'beginMFARegistration'
  | 'finishMFARegistration'
  | 'listMFADevices'
  | 'deleteMFADevice';

export function userHandlers(auth: AuthServer): Pick<UnaryHandlers, UserRPC> {
  return {
    ping: async (_req, { on }) => ({
      clusterName: auth.clusterName,
      serverVersion: VERSION,
      caPins: await auth.tlsCAPins(),
      backend: on.signedIn ? auth.backend.kind : '',
      secondFactor: auth.secondFactor,
    }),

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
  };
}
