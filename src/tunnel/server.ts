// Proxy side of reverse tunnels: accepts agents' outbound TLS connections (ALPN ward-reversetunnel, routed
// here by the mux), checks their host identity, and opens one multiplexed stream (muxsession.ts) on an
// agent's tunnel for each user connection the proxy routes to that agent: the proxy opens, the agent accepts.
import { AsyncLocalStorage } from 'node:async_hooks';
import { X509Certificate, constants as cryptoConstants } from 'node:crypto';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { AccessDenied, BadParameter, ConnectionProblem, LimitExceeded, NotFound } from '../api/errors.ts';
import { identityFromPeerCert } from '../crypto/x509.ts';
import { startLagProbe } from './lag.ts';
import { MuxSession, type MuxStream } from './muxsession.ts';
import { RecordChannel, RecordProtocolError } from './records.ts';
import {
  AGENT_SYSTEM_ROLES,
  ALPN_REVERSE_TUNNEL,
  DEFAULT_MAX_STREAMS_PER_USER,
  HEADER_CLIENT_ADDR,
  HEADER_TARGET,
  PING_INTERVAL_MS,
  checkMetaValue,
  muxLimits,
  type DialMeta,
} from './protocol.ts';

export interface TunnelServerOptions {
  /** The proxy's host certificate: key, chain (leaf then cluster CA), and the cluster CA(s) agents are signed by. */
  tls: { keyPem: string; certChainPem: string; caPems: string[] };
  log: Logger;
  /** Told when an agent's tunnel becomes the current one (up) and when the current one goes away (down). */
  onAgent?(hostId: string, up: boolean): void;
  /** Bound on waiting for the agent to answer a dial (default 10 s). */
  dialTimeoutMs?: number;
  /**
   * Tunnel handshakes in progress past which, while the proxy is busy, new connections are closed at once
   * (default MAX_HANDSHAKES).
   */
  maxHandshakes?: number;
  /** Whether the proxy is too busy to take handshakes past maxHandshakes (default: event loop over BUSY_LAG_MS behind).
   */
  busy?: () => boolean;
  /** Streams one user (DialMeta.user) may hold on one tunnel at once (default DEFAULT_MAX_STREAMS_PER_USER). */
  maxStreamsPerUser?: number;
  /**
   * Why a host may not hold a tunnel (a lock on its host id, which is also how a removed host is revoked), or
   * undefined. Asked at accept and, by recheck(), for every live tunnel.
   */
  refusal?: (hostId: string) => string | undefined;
}

export interface TunnelServer {
  /** Takes a raw TCP socket whose ClientHello offered ALPN ward-reversetunnel (not yet TLS-terminated). */
  handle(rawSocket: net.Socket): void;
  /** Opens a stream to `hostId`'s agent. NotFound if it holds no tunnel here. */
  dial(hostId: string, meta: DialMeta, signal?: AbortSignal): Promise<Duplex>;
  /** Host ids with a tunnel to this proxy. */
  agents(): string[];
  /** Connections accepted whose tunnel is not up yet. */
  handshakesInProgress(): number;
  /** A renewed certificate for the handshakes that follow; tunnels up now keep theirs. */
  setTLS(tls: TunnelServerOptions['tls']): void;
  /** Asks `refusal` again for every live tunnel and closes those of hosts now refused (call when locks change). */
  recheck(): void;
  close(): Promise<void>;
}

// Per-tunnel state is deliberately small: at 10,000 idle tunnels every field is paid 10,000 times.
interface AgentSession {
  hostId: string;
  mux: MuxSession;
  /** Certificate notAfter (ms): the handshake checked validity once, the sweep enforces it for the tunnel's life. */
  expiresAt: number;
  /** Set once `refusal` refused the host: the tunnel is closing. */
  refused?: boolean;
  /** Streams open per user, made on the first dial (an idle tunnel pays nothing for it). */
  users?: Map<string, number>;
  /** The agent's certificate (DER): a TLS CA rotation that drops its CA ends the tunnel. */
  cert: Buffer;
}

const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long the streams of a tunnel whose host was refused (recheck) may go on before the tunnel is closed. */
const REFUSED_GRACE_MS = 2_000;
/**
 * Load shedding for reconnect storms. When a proxy restarts, every agent dials it again within seconds. Each
 * handshake costs the proxy ~1-2 ms of CPU, so 10,000 at once queued work past the 10 s handshake timeout: many
 * timed out after the proxy had paid for them, their agents came back to do it again, and user connections waited
 * behind it all (bench/agents.ts --restart-proxy; the figures are in docs/tunnel.md).
 * So while the proxy is busy (its event loop over BUSY_LAG_MS behind) and already has MAX_HANDSHAKES tunnel
 * handshakes in progress (TCP accepted, tunnel not yet up), a new connection is closed before TLS starts, which
 * costs next to nothing, and its agent backs off. Both conditions, not the count alone: a client that opens
 * connections and then stalls its handshakes would otherwise hold every slot for 10 s at a time and lock agents
 * out of an idle proxy; to be shed, it has to make the proxy busy too. 256 handshakes are at most ~0.5 s of queued
 * work, and leave room for agents whose handshakes wait on a slow network rather than on us.
 */
const MAX_HANDSHAKES = 256;
const BUSY_LAG_MS = 100;
/**
 * The connection whose TLS handshake a 'secureConnection' event belongs to. The shared TLS server checks the
 * agent's certificate chain, but hands over only its TLSSocket; the store follows the handshake's async
 * resources from handle() to that event.
 */
const handshaking = new AsyncLocalStorage<RecordChannel>();

/**
 * The server's secure context: given whole at creation and again at every certificate renewal, since
 * setSecureContext resets whatever it is not given (the TLS version and the ticket option included).
 */
function secureContextOptions(material: TunnelServerOptions['tls']): tls.SecureContextOptions {
  return {
    key: material.keyPem,
    cert: material.certChainPem,
    ca: material.caPems,
    // The records take their keys from the TLS 1.3 exporter (records.ts).
    minVersion: 'TLSv1.3',
    // No resumption: an agent holds one long-lived connection, and a fresh handshake re-checks its certificate.
    // (With this option OpenSSL still sends TLS 1.3 tickets, stateful ones no server keeps; records.ts orders
    // its switch after them.)
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  };
}

export function createTunnelServer(opts: TunnelServerOptions): TunnelServer {
  const { log } = opts;
  const dialTimeoutMs = opts.dialTimeoutMs ?? 10_000;
  /** The current session per host; a reconnecting agent's newest session replaces the old one here. */
  const current = new Map<string, AgentSession>();
  /** Every live session, current or draining, so keepalive and close() reach them all. */
  const live = new Set<AgentSession>();
  /** Connections between TCP accept and their tunnel coming up (or failing). */
  const handshakes = new Set<RecordChannel>();
  const maxHandshakes = opts.maxHandshakes ?? MAX_HANDSHAKES;
  const maxStreamsPerUser = opts.maxStreamsPerUser ?? DEFAULT_MAX_STREAMS_PER_USER;
  const lag = opts.busy ? undefined : startLagProbe();
  const busy = opts.busy ?? (() => lag!.lagMs() > BUSY_LAG_MS);
  /** Connections closed past the limit since the last sweep; `active` once the start of it has been logged. */
  const shedding = { count: 0, active: false };
  let closed = false;
  let trusted = opts.tls.caPems;

  // One TLS server object terminates every tunnel; sockets are handed in with emit('connection').
  const tlsServer = tls.createServer({
    ...secureContextOptions(opts.tls),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [ALPN_REVERSE_TUNNEL],
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
  });
  tlsServer.on('tlsClientError', (err, socket) => {
    log.info({ err: err.message, remote: socket.remoteAddress }, 'tunnel agent refused in TLS handshake');
    // Node reports a refused or timed-out handshake (handshakeTimeout) but leaves the socket open.
    socket.destroy();
  });
  tlsServer.on('secureConnection', (socket) => {
    const channel = handshaking.getStore();
    try {
      if (!channel) throw new ConnectionProblem('TLS connection without a tunnel');
      accept(socket, channel);
    } catch (err) {
      log.warn({ err: (err as Error).message, remote: channel?.raw.remoteAddress }, 'tunnel agent refused');
      socket.destroy();
    }
  });

  function accept(socket: tls.TLSSocket, channel: RecordChannel): void {
    if (closed) throw new ConnectionProblem('tunnel server is closing');
    if (socket.alpnProtocol !== ALPN_REVERSE_TUNNEL)
      throw new BadParameter('agent did not negotiate ward-reversetunnel');
    // rejectUnauthorized already tied the chain to the cluster CA; what is left is what kind of peer this is.
    const peer = socket.getPeerCertificate();
    const id = identityFromPeerCert(peer);
    const hostId = id.hostId;
    if (id.kind !== 'host' || !hostId) throw new BadParameter('tunnel peer is not a host');
    if (!id.systemRoles?.some((r) => (AGENT_SYSTEM_ROLES as readonly string[]).includes(r))) {
      throw new BadParameter(`host ${hostId} has no agent system role`);
    }
    const refused = opts.refusal?.(hostId);
    if (refused) throw new AccessDenied(`host ${hostId} refused: ${refused}`);
    // Roles reversed: the agent dialled us, but the proxy is the side that opens streams.
    channel.switchFromTLS(socket, 'server');
    const expiresAt = Date.parse(id.expires);
    const s: AgentSession = { hostId, mux: undefined as unknown as MuxSession, expiresAt, cert: peer.raw };
    // The tunnel is up, and replaces the host's previous one, once the agent's HELLO has come through the
    // records: a connection whose switch fails never displaces a working tunnel.
    const up = () => {
      handshakes.delete(channel);
      const previous = current.get(hostId);
      current.set(hostId, s);
      // Graceful: the old session takes no new streams but keeps the ones it carries, and ends with the last.
      // If it is dead (the usual reason an agent reconnects), keepalive destroys it.
      if (previous) previous.mux.drain();
      log.info({ hostId, remote: channel.raw.remoteAddress, replaced: previous !== undefined }, 'tunnel up');
      opts.onAgent?.(hostId, true);
    };
    s.mux = new MuxSession(channel, {
      ...muxLimits,
      role: 'opener',
      onReady: up,
      onClose: (err) => {
        if (err) log.debug({ hostId, err: err.message }, 'tunnel session error');
        live.delete(s);
        if (current.get(hostId) === s) {
          current.delete(hostId);
          log.info({ hostId }, 'tunnel down');
          opts.onAgent?.(hostId, false);
        }
      },
    });
    live.add(s);
  }

  /** Counts `stream` against `user` on the session until it closes. */
  function countStream(s: AgentSession, user: string, stream: MuxStream): void {
    const users = (s.users ??= new Map());
    users.set(user, (users.get(user) ?? 0) + 1);
    stream.once('close', () => {
      const left = (users.get(user) ?? 1) - 1;
      if (left > 0) users.set(user, left);
      else users.delete(user);
      if (users.size === 0 && s.users === users) s.users = undefined;
    });
  }

  /** Closes a connection past the handshake limit, before TLS starts. The sweep reports how many. */
  function shed(rawSocket: net.Socket): void {
    rawSocket.destroy();
    shedding.count++;
    if (shedding.active) return;
    shedding.active = true;
    log.warn(
      { limit: maxHandshakes },
      'proxy busy with tunnel handshakes: closing new agent connections at once (agents retry with backoff)',
    );
  }

  // One timer for all tunnels instead of one per tunnel. An agent also pings us; this catches a half-open
  // connection from the proxy's side within two intervals, and ends tunnels whose certificate expired. It also
  // reports the connections shed since the last round.
  const sweep = setInterval(() => {
    if (shedding.count > 0)
      log.warn(
        { closed: shedding.count, limit: maxHandshakes },
        'agent connections closed past the tunnel handshake limit',
      );
    else shedding.active = false;
    shedding.count = 0;
    const now = Date.now();
    for (const s of live) {
      if (s.mux.isClosed) continue;
      if (now >= s.expiresAt) {
        log.info({ hostId: s.hostId }, 'tunnel certificate expired');
        s.mux.destroy();
      } else if (s.mux.pingOutstanding) {
        log.info({ hostId: s.hostId }, 'tunnel keepalive timed out');
        s.mux.destroy();
      } else {
        s.mux.ping();
      }
    }
  }, PING_INTERVAL_MS);
  sweep.unref();

  return {
    handle(rawSocket) {
      if (closed) return void rawSocket.destroy();
      if (handshakes.size >= maxHandshakes && busy()) return shed(rawSocket);
      const channel = new RecordChannel(rawSocket, { switchTimeoutMs: TLS_HANDSHAKE_TIMEOUT_MS });
      handshakes.add(channel);
      channel.once('close', () => handshakes.delete(channel));
      // A breach of the record protocol (a forged or replayed record, an agent that never switches) is a warning;
      // a failed handshake is worth a line; a broken tunnel's socket error is not.
      channel.on('error', (err) => {
        const level = err instanceof RecordProtocolError ? 'warn' : channel.switched ? 'debug' : 'info';
        log[level]({ err: err.message, remote: rawSocket.remoteAddress }, 'tunnel connection error');
      });
      handshaking.run(channel, () => tlsServer.emit('connection', channel.transport));
    },

    async dial(hostId, meta, signal) {
      signal?.throwIfAborted();
      for (const [what, value] of [
        [HEADER_CLIENT_ADDR, meta.clientAddr],
        [HEADER_TARGET, meta.target],
      ] as const) {
        const problem = checkMetaValue(what, value);
        if (problem) throw new BadParameter(problem);
      }
      const s = current.get(hostId);
      if (!s || s.mux.isClosed) throw new NotFound(`no tunnel to node ${hostId}`);
      const held = meta.user === undefined ? 0 : (s.users?.get(meta.user) ?? 0);
      if (held >= maxStreamsPerUser) {
        log.info(
          { hostId, user: meta.user, limit: maxStreamsPerUser },
          'tunnel stream refused: user at the per-user limit',
        );
        throw new LimitExceeded(
          `you have ${held} connections open to node ${hostId}, the most one user may have: close some first`,
        );
      }
      let stream: MuxStream;
      try {
        stream = s.mux.open(meta);
      } catch (err) {
        throw new ConnectionProblem(`tunnel to node ${hostId} cannot take a stream: ${(err as Error).message}`);
      }
      if (meta.user !== undefined) countStream(s, meta.user, stream);
      // Whoever takes the stream adds its own handlers; this one keeps a reset from crashing the process.
      stream.on('error', (err) => log.debug({ hostId, err: err.message }, 'tunnel stream error'));
      await waitForAccept(stream, hostId, dialTimeoutMs, signal);
      return stream;
    },

    agents: () => [...current.keys()],

    recheck() {
      for (const s of live) {
        if (s.refused || s.mux.isClosed) continue;
        const refused = opts.refusal?.(s.hostId);
        if (!refused) continue;
        s.refused = true;
        log.info({ hostId: s.hostId, reason: refused }, 'tunnel closed: host refused');
        // No new stream from now on; the ones it carries get a moment, so that an honest agent (which learns of the
        // lock too) ends its sessions itself and its users read why. Then the tunnel goes, whatever the agent did.
        s.mux.drain();
        setTimeout(() => s.mux.destroy(), REFUSED_GRACE_MS).unref();
      }
    },

    handshakesInProgress: () => handshakes.size,

    setTLS(material) {
      tlsServer.setSecureContext(secureContextOptions(material));
      const dropped = trusted.filter((pem) => !material.caPems.includes(pem));
      trusted = material.caPems;
      if (dropped.length === 0) return;
      // A TLS CA rotation reached standby (or undid a new key): a tunnel proved with a certificate from the dropped
      // CA ends, as it would not be let in again. The handshake checked the signature; which CA is a name match.
      const cas = material.caPems.map((pem) => new X509Certificate(pem));
      for (const s of live) {
        const cert = new X509Certificate(s.cert);
        if (cas.some((ca) => cert.checkIssued(ca))) continue;
        log.info({ hostId: s.hostId }, 'tunnel certificate from a CA no longer trusted');
        s.mux.destroy();
      }
    },

    async close() {
      closed = true;
      clearInterval(sweep);
      lag?.stop();
      const all = [...live];
      await Promise.all(
        all.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.mux.socket.destroyed) return resolve();
              s.mux.socket.once('close', () => resolve());
              s.mux.destroy();
            }),
        ),
      );
    },
  };
}

/** Resolves on the agent's ACCEPT; rejects on its RESET, the tunnel closing, the deadline, or the caller's abort. */
async function waitForAccept(
  stream: MuxStream,
  hostId: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const gaveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConnectionProblem(`agent ${hostId} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    onAbort = () => reject(signal?.reason instanceof Error ? signal.reason : new ConnectionProblem('dial aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([
      stream.accepted().catch((err: Error & { reason?: number }) => {
        throw stream.isReset
          ? new ConnectionProblem(`agent ${hostId} refused the connection (reset ${err.reason ?? ''})`)
          : new ConnectionProblem(`tunnel to node ${hostId} closed before the agent answered`);
      }),
      gaveUp,
    ]);
  } catch (err) {
    stream.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}
