// Web sessions: a browser signed in at a proxy. Stored in the backend (so every proxy serves every
// session) under the SHA-256 of the browser's bearer secret, with the certificates and the private keys
// sealed by the proxy under a key only the bearer secret yields: a copy of the backend cannot act as
// the user. A session ends with its certificates (the item expires then), after an idle period, or at
// sign-out.
import { BadParameter, NotFound } from '../api/errors.ts';
import type { WebSessionRecord } from '../services/websessions.ts';
import type { AuthServer, Certs } from './server.ts';
import { authenticateUser } from './login.ts';

export type { WebSessionRecord } from '../services/websessions.ts';

const ID_HASH = /^[0-9a-f]{64}$/;
const MAX_SEALED_KEYS = 16 * 1024;
export const MIN_IDLE_TIMEOUT_MS = 10_000;
export const MAX_IDLE_TIMEOUT_MS = 86_400_000;
/** last_active is written at most this often: a busy session costs one backend write a minute, not one per request. */
export const ACTIVITY_WRITE_INTERVAL_MS = 60_000;

export type WebSessionState = 'active' | 'idle' | 'expired';

/** Whether a session may still be used at `now` (pure: the rule the auth server applies). */
export function webSessionState(
  s: Pick<WebSessionRecord, 'last_active' | 'idle_timeout_ms' | 'expires'>,
  now: Date,
): WebSessionState {
  if (now.getTime() >= new Date(s.expires).getTime()) return 'expired';
  if (now.getTime() - new Date(s.last_active).getTime() > s.idle_timeout_ms) return 'idle';
  return 'active';
}

/** Whether a request at `now` should move last_active (pure). */
export function shouldRecordActivity(s: Pick<WebSessionRecord, 'last_active'>, now: Date): boolean {
  return now.getTime() - new Date(s.last_active).getTime() >= ACTIVITY_WRITE_INTERVAL_MS;
}

function checkIdHash(idHash: string): string {
  if (!ID_HASH.test(idHash)) throw new BadParameter('invalid web session id');
  return idHash;
}

export interface StoredWebSession {
  record: WebSessionRecord;
  certs: Certs;
}

async function present(auth: AuthServer, record: WebSessionRecord): Promise<StoredWebSession> {
  const ttlMs = Math.max(0, new Date(record.expires).getTime() - auth.now().getTime());
  return {
    record,
    certs: { sshCert: record.ssh_cert, tlsCert: record.tls_cert, ...(await auth.trustBundle()), ttlMs },
  };
}

export interface WebSessionRequest {
  sshPublicKey: string;
  tlsPublicKey: string;
  ttlMs: number;
  clientAddr: string;
  idHash: string;
  sealedKeys: Uint8Array;
  idleTimeoutMs: number;
}

function checkWebSessionRequest(req: WebSessionRequest): string {
  const key = checkIdHash(req.idHash);
  if (req.sealedKeys.length === 0 || req.sealedKeys.length > MAX_SEALED_KEYS)
    throw new BadParameter('invalid sealed keys');
  if (!(req.idleTimeoutMs >= MIN_IDLE_TIMEOUT_MS && req.idleTimeoutMs <= MAX_IDLE_TIMEOUT_MS)) {
    throw new BadParameter('idle timeout must be between 10s and 24h');
  }
  return key;
}

export async function createWebSession(
  auth: AuthServer,
  req: WebSessionRequest & { user: string; password: string; secondFactor: string },
): Promise<StoredWebSession> {
  const idHash = checkWebSessionRequest(req);
  // The login itself is audited (user.login) by authenticateUser.
  return storeWebSession(auth, idHash, req.user, req, await authenticateUser(auth, req));
}

/**
 * A web session for a user who has just proved who they are another way: with an invite or reset link
 * and the second factor registered with it (usertokens.ts).
 */
export async function createWebSessionAfterLink(
  auth: AuthServer,
  user: string,
  method: string,
  req: WebSessionRequest,
): Promise<StoredWebSession> {
  const idHash = checkWebSessionRequest(req);
  const certs = await auth.issueUserCerts(await auth.getUserOrDeny(user), req, req.ttlMs, user);
  await auth.audit.emit('user.login', { user, success: true, method, remote_addr: req.clientAddr });
  return storeWebSession(auth, idHash, user, req, certs);
}

async function storeWebSession(
  auth: AuthServer,
  idHash: string,
  user: string,
  req: WebSessionRequest,
  certs: Certs,
): Promise<StoredWebSession> {
  const now = auth.now();
  const expires = new Date(now.getTime() + certs.ttlMs);
  const record: WebSessionRecord = {
    user,
    ssh_cert: certs.sshCert,
    tls_cert: certs.tlsCert,
    sealed_keys: Buffer.from(req.sealedKeys).toString('base64'),
    created: now.toISOString(),
    last_active: now.toISOString(),
    idle_timeout_ms: req.idleTimeoutMs,
    expires: expires.toISOString(),
  };
  await auth.stores.webSessions.create(idHash, record, expires);
  return { record, certs };
}

/** The session, if it is still usable; a request's activity is recorded on the way. */
export async function getWebSession(auth: AuthServer, idHash: string): Promise<StoredWebSession> {
  checkIdHash(idHash);
  const gone = new NotFound('web session not found or expired: sign in again');
  const stored = await auth.stores.webSessions.get(idHash);
  if (!stored) throw gone;
  const { record } = stored;
  const now = auth.now();
  const state = webSessionState(record, now);
  if (state !== 'active') {
    await auth.stores.webSessions.delete(idHash);
    throw gone;
  }
  if (shouldRecordActivity(record, now)) {
    const next = { ...record, last_active: now.toISOString() };
    // Two proxies may record the same minute at once: the loser's write is not needed.
    if (await auth.stores.webSessions.replace(stored, next)) Object.assign(record, next);
  }
  return present(auth, record);
}

export async function deleteWebSession(auth: AuthServer, idHash: string): Promise<void> {
  checkIdHash(idHash);
  // Signing out twice is not an error.
  await auth.stores.webSessions.delete(idHash);
}
