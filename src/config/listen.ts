// Listening on "host:port" with the one-line errors a user needs (port taken, no permission).
import type { Server } from 'node:net';
import { BadParameter } from '../api/errors.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Splits "host:port", "[::1]:port" or ":port". */
export function parseHostPort(text: string, defaultPort?: number): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d{1,5}))?$/.exec(text.trim());
  const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!m || port === undefined || port > 65535) throw new BadParameter(`invalid address "${text}" (expected host:port)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function listenOn(server: Server, listen: string, what: string): Promise<ListenAddress> {
  const { host, port } = parseHostPort(listen);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new BadParameter(`cannot start the ${what}: ${host}:${port} is already in use`));
      else if (err.code === 'EACCES') reject(new BadParameter(`cannot start the ${what}: no permission to listen on ${host}:${port}`));
      else if (err.code === 'EADDRNOTAVAIL') reject(new BadParameter(`cannot start the ${what}: ${host} is not an address of this machine`));
      else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve({ host, port: typeof addr === 'object' && addr ? addr.port : port });
    });
  });
}
