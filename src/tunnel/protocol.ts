// The wire contract of a reverse tunnel, shared by the client (client.ts) and the proxy (server.ts): ALPN name,
// the dial metadata and its checks, and the multiplexer limits both ends use (frames: streammux.ts). Pure.
import type { MuxLimits } from './muxsession.ts';

export const ALPN_REVERSE_TUNNEL = 'ward-reversetunnel';
/** Names of the two dial metadata fields an OPEN frame carries (used in messages). */
export const HEADER_CLIENT_ADDR = 'ward-client-addr';
export const HEADER_TARGET = 'ward-target';
/** The identity of an agent that may hold a tunnel: one of these system roles. */
export const AGENT_SYSTEM_ROLES = ['node', 'db', 'app', 'kube'] as const;

export interface DialMeta {
  /** Address of the user's client as the proxy saw it (for audit on the agent). */
  clientAddr: string;
  /** What the agent should connect the stream to, e.g. `localhost:3022` or a database name. */
  target: string;
  /**
   * The Ward user the stream is for, as the proxy authenticated them: the proxy counts a tunnel's streams per user
   * against its per-user limit. Not sent to the agent (which checks the user itself, inside the stream).
   */
  user?: string;
}

const MAX_META = 1024;
// Visible ASCII and space only: the agent logs and audits these values, and passes the target on to a dialer.
const META_CHARS = /^[\x20-\x7e]+$/;

/** Null when the value may travel as dial metadata, else the reason it may not. */
export function checkMetaValue(what: string, value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0) return `${what} is missing`;
  if (value.length > MAX_META) return `${what} is longer than ${MAX_META} characters`;
  if (!META_CHARS.test(value)) return `${what} holds characters other than printable ASCII`;
  return null;
}

const MiB = 1024 * 1024;
/**
 * One stream carries one user connection (SSH, database, file copy). A 64 KiB stream window would cap a
 * stream at one window per round trip; 1 MiB lets a single copy fill a loopback or LAN link. Windows are
 * credit, not allocations: an idle tunnel costs nothing for them. The session window bounds what all
 * streams of one tunnel may leave buffered at the receiver together; the stream cap bounds the streams.
 */
export const muxLimits: MuxLimits = {
  streamWindow: 1 * MiB,
  sessionWindow: 16 * MiB,
  maxStreams: 4096,
};

/**
 * Streams one user may hold on one tunnel at once: a sixteenth of the tunnel's, so one user (say, with SSH
 * connections that never authenticate) cannot take every stream and lock everyone else out of the node.
 */
export const DEFAULT_MAX_STREAMS_PER_USER = muxLimits.maxStreams / 16;

/** Keepalive: each end pings every interval; a PING not acknowledged in time means the peer is gone (NAT expiry,
 * crash). */
export const PING_INTERVAL_MS = 15_000;
export const PING_TIMEOUT_MS = 10_000;
