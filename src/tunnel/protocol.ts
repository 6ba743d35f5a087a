// The wire contract of a reverse tunnel, shared by the agent (agent.ts) and the proxy (server.ts): ALPN name,
// the dial request's path and headers, and the HTTP/2 settings both ends use. Pure constants and checks.
import type { Settings } from 'node:http2';

export const ALPN_REVERSE_TUNNEL = 'ward-reversetunnel';
/** The proxy opens one stream with this method and path per connection it routes to the agent. */
export const DIAL_METHOD = 'POST';
export const DIAL_PATH = '/ward.tunnel.v1/dial';
export const HEADER_CLIENT_ADDR = 'ward-client-addr';
export const HEADER_TARGET = 'ward-target';
/** The identity of an agent that may hold a tunnel: one of these system roles. */
export const AGENT_SYSTEM_ROLES = ['node', 'db', 'app', 'kube'] as const;

export interface DialMeta {
  /** Address of the user's client as the proxy saw it (for audit on the agent). */
  clientAddr: string;
  /** What the agent should connect the stream to, e.g. `localhost:3022` or a database name. */
  target: string;
}

const MAX_META = 1024;
// Visible ASCII and space only: anything else could split or smuggle a header on some HTTP/2 stack.
const META_CHARS = /^[\x20-\x7e]+$/;

/** Null when the value may travel as a dial header, else the reason it may not. */
export function checkMetaValue(what: string, value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0) return `${what} is missing`;
  if (value.length > MAX_META) return `${what} is longer than ${MAX_META} characters`;
  if (!META_CHARS.test(value)) return `${what} holds characters other than printable ASCII`;
  return null;
}

const MiB = 1024 * 1024;
/**
 * One stream carries one user connection (SSH, database, file copy). The default 64 KiB stream window caps
 * a stream at one window per round trip; 1 MiB lets a single copy fill a loopback or LAN link. Windows are
 * credit, not allocations: an idle tunnel costs nothing extra for them.
 */
export const STREAM_WINDOW = 1 * MiB;
/** The connection window (WINDOW_UPDATE on stream 0) is separate and stays 64 KiB unless raised. */
export const SESSION_WINDOW = 8 * MiB;

export const h2Settings: Settings = {
  initialWindowSize: STREAM_WINDOW,
  enablePush: false,
  // Dial requests carry three short headers; a peer sending more is broken or hostile.
  maxHeaderListSize: 16 * 1024,
  maxConcurrentStreams: 4096,
};

/**
 * nghttp2's cap on what one session may hold in buffers (MB). The default of 10 is below the 8 MiB
 * connection window plus headroom for many streams, which would make nghttp2 refuse streams under load
 * with ENHANCE_YOUR_CALM. It is a ceiling, not an allocation.
 */
export const MAX_SESSION_MEMORY_MB = 32;

/** Keepalive: each end pings every interval; a PING not acknowledged in time means the peer is gone (NAT expiry, crash). */
export const PING_INTERVAL_MS = 15_000;
export const PING_TIMEOUT_MS = 10_000;
