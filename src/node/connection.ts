// One authenticated SSH connection as the Node Service's channel handlers see it: who is on the other end,
// the limits that bind it and the hooks for interactive sessions. server.ts builds it; session.ts, forward.ts
// and agent forwarding take it, so it lives below all of them.
import type { Connection } from 'ssh2';
import type pino from 'pino';
import type { SSHCertificate } from '../crypto/sshcert.ts';
import type { OSUser } from './osuser.ts';
import type { JoinMode, LiveSession, SessionRegistry } from './live.ts';

export interface NodeSSHServerLimits {
  /** Open channels (sessions, forwarded connections) per SSH connection. */
  maxChannels: number;
  /** Remote-forward listeners (`ssh -R`) per SSH connection. */
  maxRemoteForwards: number;
  /** From TCP accept to successful user authentication. */
  handshakeTimeoutMs: number;
  /** Disconnect after this long without channel data from the client; 0 = never (Teleport's client_idle_timeout). */
  idleTimeoutMs: number;
}

export interface SessionHooks {
  registry: SessionRegistry;
  /** The spool directory recordings are written to while they run. */
  spoolDir: string;
  serverId: string;
  hostname: string;
  /** A session started, changed participants (ended = false) or ended (ended = true). */
  onChange(session: LiveSession, ended: boolean): void;
  /** May this user join this session in this mode? (The owner too needs the session's login.) */
  canJoin(identity: Identity, session: LiveSession, mode: JoinMode): boolean;
}

/** Who is on the other end of an authenticated connection; fixed at authentication. */
export interface Identity {
  user: string;
  login: string;
  cert: SSHCertificate;
  osUser: OSUser;
  permitPortForwarding: boolean;
  /** `ssh -R` may bind the address the client names (GatewayPorts clientspecified), not only loopback. */
  permitGatewayPorts: boolean;
  permitAgentForwarding: boolean;
  permitPty: boolean;
}

/** Per-connection state shared by the channel handlers. */
export interface ConnContext {
  id: string;
  client: Connection;
  identity: Identity;
  remote: { addr: string; port: number };
  local: { addr: string; port: number };
  log: pino.Logger;
  limits: NodeSSHServerLimits;
  sessions?: SessionHooks;
  /** Writes an audit event; false if it could not be written (the caller refuses what needed it). */
  emit(event: string, fields: Record<string, unknown>): boolean;
  /** Reserves a channel slot; null when the connection is at its limit. Call the result once on close. */
  acquireChannel(): (() => void) | null;
  /** Runs `fn` when the connection ends, however it ends (kills children, closes listeners). */
  onClose(fn: () => void): void;
  /** Ways to tell the user something on this connection's open sessions (one per session channel). */
  notices: Set<(message: string) => void>;
}
