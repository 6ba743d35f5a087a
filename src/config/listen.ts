// Listening on "host:port" with the one-line errors a user needs (port taken, no permission).
import type { Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { BadParameter } from '../api/errors.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Splits "host:port", "[::1]:port" or ":port". */
export function parseHostPort(text: string, defaultPort?: number): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d{1,5}))?$/.exec(text.trim());
  const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!m || port === undefined || port > 65535)
    throw new BadParameter(`invalid address "${text}" (expected host:port)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

const LISTEN_BACKLOG = 4096;

export function listenOn(server: Server, listen: string, what: string): Promise<ListenAddress> {
  const { host, port } = parseHostPort(listen);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE')
        reject(new BadParameter(`cannot start the ${what}: ${host}:${port} is already in use`));
      else if (err.code === 'EACCES')
        reject(new BadParameter(`cannot start the ${what}: no permission to listen on ${host}:${port}`));
      else if (err.code === 'EADDRNOTAVAIL')
        reject(new BadParameter(`cannot start the ${what}: ${host} is not an address of this machine`));
      else reject(err);
    };
    server.once('error', onError);
    // A deep accept queue (the kernel caps it at net.core.somaxconn): when thousands of agents reconnect
    // at once, a full queue of Node's default 511 makes the kernel drop handshakes that the clients
    // already believe complete, and those connections then hang until a SYN-ACK retransmit gets through.
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve({ host, port: typeof addr === 'object' && addr ? addr.port : port });
    });
  });
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** The loopback address to dial a listener of this process at (0.0.0.0 → 127.0.0.1, :: → ::1). */
export function loopbackDialable(addr: ListenAddress): ListenAddress {
  return { host: addr.host === '::' ? '::1' : isWildcard(addr.host) ? '127.0.0.1' : addr.host, port: addr.port };
}

/** "host:port", with brackets around an IPv6 host. */
export function formatHostPort(addr: ListenAddress): string {
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** This machine's non-loopback addresses (IPv4 first): what others reach a wildcard listener by. */
export function machineAddresses(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const external = all.filter((i) => !i.internal && !(i.family === 'IPv6' && i.address.startsWith('fe80')));
  return [...external.filter((i) => i.family === 'IPv4'), ...external.filter((i) => i.family === 'IPv6')].map(
    (i) => i.address,
  );
}

/**
 * The address to advertise for a listener: its own host, or for a wildcard (0.0.0.0, ::) the machine's
 * first non-loopback address, so a proxy on another host can dial it.
 */
export function advertisedHost(listenHost: string): string {
  if (!isWildcard(listenHost)) return listenHost;
  return machineAddresses()[0] ?? '127.0.0.1';
}

/** Names and addresses a listening node is reached by (they become its host-certificate principals). */
export function nodeAddresses(listenHost: string): string[] {
  return ['localhost', ...(isWildcard(listenHost) ? ['127.0.0.1', ...machineAddresses()] : [listenHost])];
}
