// Domain values as the Auth API's protobuf messages, for the handlers that return them (api.ts, api-web.ts).
import type { Certs } from './server.ts';

/** A login's certificates and trust bundle as the Certs message. */
export function certsMessage(c: Certs) {
  return {
    sshCert: c.sshCert,
    tlsCert: c.tlsCert,
    tlsCas: c.tlsCAs,
    sshHostCas: c.sshHostCAs,
    clusterName: c.clusterName,
    ttlSeconds: Math.round(c.ttlMs / 1000),
  };
}
