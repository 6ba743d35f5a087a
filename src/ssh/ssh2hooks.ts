// The one place Ward reaches past ssh2's public API. Features ssh2 lacks are added by
// patches/ssh2+<version>.patch (certificates, eow@openssh.com, server-opened agent channels); what is left
// here are small run-time taps on a server-side connection's internals. Upgrading ssh2 is reviewing that patch
// and this file, then running ssh2hooks.test.ts and ssh2-certs.test.ts (test/architecture.test.ts keeps every
// other file off ssh2's underscore-prefixed internals).
import type net from 'node:net';
import type { Channel, Connection } from 'ssh2';
import { NotImplemented } from '../api/errors.ts';

type Handler = (...args: unknown[]) => unknown;

/** What this module reads of ssh2's server-side `Client` (lib/server.js), beyond its typings. */
interface ConnectionInternals {
  _sock?: net.Socket;
  _protocol?: { _handlers?: Record<string, Handler | undefined> };
}

/** The public method patches/ssh2+<version>.patch adds to a server-side connection. */
interface PatchedConnection {
  openssh_authAgent?: (cb: (err: Error | undefined, channel?: Channel) => void) => unknown;
}

/**
 * The socket (or injected stream) a server-side connection runs on: ssh2 keeps it but has no accessor, and
 * the socket is what a login deadline and the local address belong to.
 */
export function connectionSocket(conn: Connection): net.Socket | undefined {
  return (conn as unknown as ConnectionInternals)._sock;
}

/**
 * Calls `fn` on every SSH_MSG_CHANNEL_DATA the peer sends on this connection, on any channel, before ssh2
 * handles it: activity for an idle timeout. ssh2 emits no per-connection event for it, and listening for
 * 'data' on every channel would put paused channels into flowing mode.
 */
export function onChannelData(conn: Connection, fn: () => void): void {
  const handlers = (conn as unknown as ConnectionInternals)._protocol?._handlers;
  const handle = handlers?.CHANNEL_DATA;
  if (!handlers || typeof handle !== 'function') {
    throw new NotImplemented('this ssh2 version has no CHANNEL_DATA handler to watch (see src/ssh/ssh2hooks.ts)');
  }
  handlers.CHANNEL_DATA = (...args: unknown[]) => {
    fn();
    return handle(...args);
  };
}

/**
 * Opens an auth-agent@openssh.com channel to the client (OpenSSH PROTOCOL section 4), for one program that
 * connected to a forwarded agent socket. The client refuses it (`err`) unless it forwards its agent.
 */
export function openAgentChannel(conn: Connection, cb: (err: Error | undefined, channel?: Channel) => void): void {
  const open = (conn as unknown as PatchedConnection).openssh_authAgent;
  if (typeof open !== 'function') {
    throw new NotImplemented('this ssh2 lacks openssh_authAgent: is patches/ssh2+<version>.patch applied?');
  }
  open.call(conn, cb);
}
