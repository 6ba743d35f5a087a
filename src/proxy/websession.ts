// Web sessions at the proxy. A browser's sign-in makes this proxy create a key pair for the session and
// ask the auth server for the user's certificates (the same password login as `wsh login`). The browser
// gets only a random bearer secret, in an HttpOnly cookie; the keys are sealed under a key derived from
// that secret and kept, with the certificates, by the auth server under the secret's SHA-256. So any
// proxy can serve the session, and neither the backend nor a proxy's memory dump of another session
// yields a usable key. Every web API call then acts as the user: an Auth API client with the session's
// own TLS certificate, so the auth server's RBAC decides, not the proxy.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { AuthClient, TLSIdentity } from '../api/client.ts';
import { createAuthClient } from '../api/client.ts';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import type { WebSession } from '../api/gen/ward/auth/v1/auth_pb.ts';
import { readIdentity, type Identity } from '../crypto/x509.ts';

export const SESSION_COOKIE = '__Host-ward_session';
export const CSRF_HEADER = 'x-csrf-token';
/** A web session's certificates live this long at most (less when the roles' max_session_ttl is shorter). */
export const WEB_SESSION_TTL_SECONDS = 12 * 3600;
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 30 * 60;
/** Sessions whose unsealed keys and Auth API client this proxy keeps at once (the least recent go first). */
const MAX_CACHED = 1000;

// ---- pure parts: the bearer secret and what derives from it ----

export function newBearer(): string {
  return randomBytes(32).toString('base64url');
}

/** The session's name at the auth server: the secret itself is never sent there. */
export function sessionIdHash(bearer: string): string {
  return createHash('sha256').update(bearer).digest('hex');
}

function sealingKey(bearer: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(bearer), Buffer.alloc(0), 'ward web session keys', 32));
}

export interface SessionKeys {
  sshKey: string;
  tlsKey: string;
}

/** AES-256-GCM: 12-byte nonce, 16-byte tag, then the ciphertext of the keys as JSON. */
export function sealKeys(bearer: string, keys: SessionKeys): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(bearer), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(keys), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

export function unsealKeys(bearer: string, sealed: Uint8Array): SessionKeys {
  const buf = Buffer.from(sealed);
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealingKey(bearer), buf.subarray(0, 12));
    decipher.setAuthTag(buf.subarray(12, 28));
    const keys = JSON.parse(
      Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]).toString('utf8'),
    ) as SessionKeys;
    if (typeof keys.sshKey !== 'string' || typeof keys.tlsKey !== 'string') throw new Error('bad keys');
    return keys;
  } catch {
    throw new AccessDenied('web session not found or expired: sign in again');
  }
}

/**
 * The CSRF token bound to the session: a state-changing call must carry it in a header, which a page
 * on another site can neither read (no CORS) nor make the browser add. Derived, so every proxy checks
 * it without storing anything.
 */
export function csrfToken(bearer: string): string {
  return createHmac('sha256', bearer).update('ward csrf token').digest('base64url');
}

export function checkCSRF(bearer: string, presented: string | undefined): void {
  const want = Buffer.from(csrfToken(bearer));
  const got = Buffer.from(presented ?? '');
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw new AccessDenied('missing or wrong CSRF token: reload the page');
}

/** The bearer secret from a Cookie header, if it has a well-formed one. */
export function bearerFromCookie(header: string | undefined): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** `__Host-`: only over HTTPS, only for this host, path /; HttpOnly: no script reads it; Strict: no other site sends
 * it. */
export function sessionCookie(bearer: string, maxAgeSeconds: number): string {
  const maxAge = Math.max(0, Math.floor(maxAgeSeconds));
  return `${SESSION_COOKIE}=${bearer}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAge}`;
}
export const CLEAR_SESSION_COOKIE = `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`;

/** The web session's own key pair, made by the proxy as wsh makes one for a login. */
function newSessionKeys(): SessionKeys & { sshPublicKey: string; tlsPublicKey: string } {
  const { sshPrivateKey, ...keys } = generateClientKeys('');
  return { sshKey: sshPrivateKey, ...keys };
}

// ---- the session manager ----

/** A signed-in browser, as one request sees it. */
export interface ActiveWebSession {
  bearer: string;
  idHash: string;
  user: string;
  identity: Identity;
  /** Acts as the user: every web API call goes through it. */
  client: AuthClient;
  tls: TLSIdentity;
  sshKey: string;
  sshCert: string;
  sshHostCAs: string[];
  expires: string;
  idleTimeoutSeconds: number;
}

export class WebSessions {
  private readonly cache = new Map<string, ActiveWebSession>();

  constructor(
    /** The proxy's own client (proxy system role): it may create and read web sessions. */
    private readonly proxyClient: AuthClient,
    /** The auth server the user-acting clients dial, host:port. */
    private readonly authAddr: string,
    private readonly idleTimeoutSeconds = DEFAULT_IDLE_TIMEOUT_SECONDS,
  ) {}

  async signIn(req: {
    user: string;
    password: string;
    secondFactor?: string;
    clientAddr: string;
  }): Promise<ActiveWebSession> {
    const bearer = newBearer();
    const keys = newSessionKeys();
    const created = await this.proxyClient.createWebSession({
      user: req.user,
      password: req.password,
      secondFactor: req.secondFactor ?? '',
      ...this.sessionRequest(bearer, keys, req.clientAddr),
    });
    return this.activate(bearer, created, keys);
  }

  /** What the auth server needs to create a web session: public keys, the secret's hash, the sealed keys. */
  private sessionRequest(bearer: string, keys: ReturnType<typeof newSessionKeys>, clientAddr: string) {
    return {
      sshPublicKey: keys.sshPublicKey,
      tlsPublicKey: keys.tlsPublicKey,
      ttlSeconds: WEB_SESSION_TTL_SECONDS,
      clientAddr,
      idHash: sessionIdHash(bearer),
      sealedKeys: sealKeys(bearer, keys),
      idleTimeoutSeconds: this.idleTimeoutSeconds,
    };
  }

  /**
   * Sign-up (or reset) with a link: sets the password, registers the second factor when the cluster
   * needs one, and signs the user in, in one call; the link and the factor just registered are the proof.
   */
  async signInWithLink(req: {
    token: string;
    password: string;
    totpCode: string;
    webauthnResponse: string;
    deviceName: string;
    clientAddr: string;
  }): Promise<{ session: ActiveWebSession; recoveryCodes: string[] }> {
    const bearer = newBearer();
    const keys = newSessionKeys();
    const used = await this.proxyClient.useUserToken({
      token: req.token,
      password: req.password,
      secondFactor: req.totpCode,
      webauthnResponse: req.webauthnResponse,
      deviceName: req.deviceName,
      webSession: this.sessionRequest(bearer, keys, req.clientAddr),
    });
    if (!used.webSession) throw new BadParameter('the auth server sent no web session for the link');
    return { session: this.activate(bearer, used.webSession, keys), recoveryCodes: used.recoveryCodes };
  }

  /** The session a request's cookie names, checked with the auth server on every call (sign-out anywhere, idle,
   * expiry). */
  async authenticate(bearer: string | undefined): Promise<ActiveWebSession> {
    if (!bearer) throw new AccessDenied('sign in first');
    const idHash = sessionIdHash(bearer);
    let stored: WebSession;
    try {
      stored = await this.proxyClient.getWebSession({ idHash });
    } catch (err) {
      this.cache.delete(idHash);
      if (
        (err as { code?: string }).code === 'ERR_NOT_FOUND' ||
        (err as { code?: string }).code === 'ERR_BAD_PARAMETER'
      ) {
        throw new AccessDenied('web session not found or expired: sign in again');
      }
      throw err;
    }
    const cached = this.cache.get(idHash);
    if (cached && cached.tls.certPem === stored.certs?.tlsCert) {
      // Most recently used last: Map keeps insertion order, so the oldest entry is the first one.
      this.cache.delete(idHash);
      this.cache.set(idHash, cached);
      return cached;
    }
    return this.activate(bearer, stored, unsealKeys(bearer, stored.sealedKeys));
  }

  async signOut(session: ActiveWebSession): Promise<void> {
    this.cache.delete(session.idHash);
    await this.proxyClient.deleteWebSession({ idHash: session.idHash });
  }

  private activate(bearer: string, stored: WebSession, keys: SessionKeys): ActiveWebSession {
    const certs = stored.certs;
    if (!certs) throw new BadParameter('the auth server sent a web session without certificates');
    const tls: TLSIdentity = { keyPem: keys.tlsKey, certPem: certs.tlsCert, caPems: certs.tlsCas };
    const session: ActiveWebSession = {
      bearer,
      idHash: sessionIdHash(bearer),
      user: stored.user,
      identity: readIdentity(certs.tlsCert),
      client: createAuthClient({ addr: this.authAddr, identity: tls, timeoutMs: 15_000 }),
      tls,
      sshKey: keys.sshKey,
      sshCert: certs.sshCert,
      sshHostCAs: certs.sshHostCas,
      expires: stored.expires,
      idleTimeoutSeconds: stored.idleTimeoutSeconds,
    };
    this.cache.set(session.idHash, session);
    while (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    return session;
  }
}
