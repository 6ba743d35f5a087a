// The web UI's second-factor calls: the signed-in user's devices (list, add a TOTP app with a QR code or
// a security key, remove), made as the user like every other web API call. The auth server keeps the
// secrets and checks every step; this file shapes the answers (the QR code is drawn here, as a PNG data
// URL the page shows under the CSP's `img-src data:`).
import QRCode from 'qrcode';
import { z } from 'zod';
import { BadParameter } from '../api/errors.ts';
import type { BeginMFARegistrationResponse } from '../api/gen/ward/auth/v1/auth_pb.ts';
import type { TOTPRegistration, WebMFADevice } from '../api/webapi.ts';
import type { Route } from './webroute.ts';

/** The browser's WebAuthn JSON (a credential or an assertion), passed on as text; the auth server parses it. */
export const webauthnJSON = z.record(z.string(), z.unknown()).transform((v) => JSON.stringify(v));
export const deviceType = z.enum(['totp', 'webauthn']);

/** What the page needs to start registering a device: the app's secret and QR code, or the key's options. */
export async function registrationAnswer(
  type: 'totp' | 'webauthn',
  r: BeginMFARegistrationResponse,
): Promise<{ webauthn_options: unknown } | TOTPRegistration> {
  if (type === 'webauthn') return { webauthn_options: JSON.parse(r.webauthnOptions) as unknown };
  // The secret is shown as text too, for apps that cannot scan (and it is what the user already holds).
  const qr = await QRCode.toDataURL(r.uri, { errorCorrectionLevel: 'M', margin: 2, width: 232 });
  return { secret: r.secret, uri: r.uri, qr };
}

const beginSchema = z.strictObject({ type: deviceType });
const finishSchema = z.strictObject({
  type: deviceType,
  name: z.string().max(64).default(''),
  code: z.string().max(64).default(''),
  /** A code from, or an assertion by, a device the user already has. */
  existing_code: z.string().max(64).optional(),
  existing_assertion: webauthnJSON.optional(),
  webauthn_response: webauthnJSON.optional(),
});

function parse<T extends z.ZodType>(schema: T, data: unknown): z.infer<T> {
  const parsed = schema.safeParse(data);
  if (!parsed.success)
    throw new BadParameter(
      `invalid request: ${parsed.error.issues[0]?.path.join('.') || 'body'}: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  return parsed.data;
}

export const mfaRoutes: Route[] = [
  {
    method: 'GET',
    path: /^\/webapi\/mfa\/devices$/,
    handle: async ({ session }) => ({
      devices: (await session.client.listMFADevices({})).devices.map(
        ({ id, type, name, added }): WebMFADevice => ({
          id,
          type,
          name,
          added,
        }),
      ),
    }),
  },
  {
    method: 'DELETE',
    path: /^\/webapi\/mfa\/devices\/([0-9a-f-]{36})$/,
    handle: async ({ session, params }) => {
      await session.client.deleteMFADevice({ device: params[0]! });
      return {};
    },
  },
  {
    method: 'POST',
    path: /^\/webapi\/mfa\/devices\/begin$/,
    handle: async ({ session, body }) => {
      const { type } = parse(beginSchema, await body());
      return registrationAnswer(type, await session.client.beginMFARegistration({ type }));
    },
  },
  {
    method: 'POST',
    path: /^\/webapi\/mfa\/devices\/finish$/,
    handle: async ({ session, body }) => {
      const req = parse(finishSchema, await body());
      const r = await session.client.finishMFARegistration({
        type: req.type,
        name: req.name,
        code: req.code,
        existingCode: req.existing_assertion ?? req.existing_code ?? '',
        webauthnResponse: req.webauthn_response ?? '',
      });
      return { device_id: r.deviceId, recovery_codes: r.recoveryCodes };
    },
  },
  {
    // A challenge for the user's own security keys: to prove one before adding another device.
    method: 'POST',
    path: /^\/webapi\/mfa\/challenge$/,
    handle: async ({ session }) => {
      const r = await session.client.createAuthenticateChallenge({});
      return { webauthn_options: r.webauthnOptions ? (JSON.parse(r.webauthnOptions) as unknown) : null, totp: r.totp };
    },
  },
];
