// The proxy's HTTPS API as both ends see it: paths, the zod schemas of bodies, and the shapes of the bodies the web
// UI reads. wsh and the web UI speak it; the proxy validates every request body against these schemas.
import { z } from 'zod';

export const WEBAPI_PING = '/webapi/ping';
export const WEBAPI_LOGIN = '/webapi/login/certs';

export const loginRequestSchema = z.strictObject({
  user: z.string().min(1).max(128),
  password: z.string().max(1024),
  ssh_public_key: z.string().max(8192),
  tls_public_key: z.string().max(8192),
  ttl_seconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 86_400)
    .default(0),
  /** A TOTP code or a recovery code, when the cluster's second_factor is not off. */
  second_factor: z.string().max(256).optional(),
});
export type LoginRequest = z.input<typeof loginRequestSchema>;

export const certsSchema = z.object({
  ssh_cert: z.string(),
  tls_cert: z.string(),
  tls_cas: z.array(z.string()),
  ssh_host_cas: z.array(z.string()),
  cluster_name: z.string(),
  ttl_seconds: z.number(),
});
export type CertsResponse = z.infer<typeof certsSchema>;

export const pingSchema = z.object({
  cluster_name: z.string(),
  server_version: z.string(),
  /** off | otp | webauthn | on: what a login needs besides the password. */
  second_factor: z.string().default('off'),
});

export const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

// What the proxy answers the web UI (src/proxy/web.ts and webroutes.ts build these; web/src reads them). Resources
// listed as stored (users, tokens, live and recorded sessions) are the types of types.ts.

/** The signed-in user (`/webapi/sessions/web`), and which pages the user's roles open. */
export interface WebMe {
  user: string;
  roles: string[];
  logins: string[];
  expires: string;
  idle_timeout_seconds: number;
  csrf_token: string;
  acl: {
    nodes: boolean;
    sessions: boolean;
    events: boolean;
    recordings: boolean;
    users: boolean;
    roles: boolean;
    tokens: boolean;
  };
}

/** A node in `GET /webapi/nodes`: `addr` is "⟷ tunnel" for a node reached by its tunnel. */
export interface WebNode {
  id: string;
  hostname: string;
  addr: string;
  labels: Record<string, string>;
}

/** A role in `GET /webapi/roles`, with its YAML as `wctl get` prints it. */
export interface WebRole {
  name: string;
  description: string;
  yaml: string;
}

/** What a sign-in takes besides the password: ward.yaml's `auth_service.second_factor`. */
export type SecondFactorMode = 'off' | 'otp' | 'webauthn' | 'on';

/** A second factor in `GET /webapi/mfa/devices`: `type` is `totp` or `webauthn`, `added` an ISO time. */
export interface WebMFADevice {
  id: string;
  type: string;
  name: string;
  added: string;
}

/** An authenticator app being added: its secret as text, its otpauth:// URI, and that URI as a QR code. */
export interface TOTPRegistration {
  secret: string;
  uri: string;
  /** A PNG data URL, drawn by the proxy (the CSP allows data: images). */
  qr: string;
}

/** A sign-up or reset link (`GET /webapi/invites/:token`): whose, until when, and what second factor it sets up. */
export interface WebInviteLink {
  user: string;
  /** `invite` or `reset`. */
  type: string;
  expires: string;
  second_factor: SecondFactorMode;
}
