// What an Auth API handler knows of the connection its call came on: the TLS socket, the client's address and
// the names in the peer's certificate. Set by the listener (listener.ts), read by the dispatcher and host handlers.
import type { TLSSocket } from 'node:tls';
import { createContextKey } from '@connectrpc/connect';
import { subjectAltNames } from './renew.ts';

export const socketKey = createContextKey<TLSSocket | undefined>(undefined);
/** The client's address: the TCP peer's, or the one a proxy vouched for in its signed header (connsource.ts). */
export const clientAddrKey = createContextKey<string>('');

/** The names (SANs) of a connection's certificate, read once per connection (a host heartbeats on it for hours). */
const certNamesOf = new WeakMap<TLSSocket, ReadonlySet<string>>();
export function peerCertNames(socket: TLSSocket | undefined): ReadonlySet<string> {
  if (!socket) return new Set();
  let names = certNamesOf.get(socket);
  if (!names) {
    names = subjectAltNames(socket.getPeerCertificate(false)?.subjectaltname);
    certNamesOf.set(socket, names);
  }
  return names;
}
