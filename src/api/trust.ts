// Deciding whether a proxy (or auth server) is really our cluster's, on first contact (trust on first
// use, like OpenSSH's known_hosts and Teleport's CA pin) and ever after (the pinned CA must sign its
// certificate). A changed CA is refused loudly: it is what a man in the middle looks like.
import type https from 'node:https';
import tls from 'node:tls';
import { ConnectionProblem, AccessDenied, isWardError } from './errors.ts';
import { splitAddr } from './addr.ts';
import { fingerprintSPKI, identityFromPeerCert } from './certinfo.ts';

export interface ProxyCA {
  pin: string;
  caPem: string;
}

function toPem(der: Buffer): string {
  const lines = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${lines}\n-----END CERTIFICATE-----\n`;
}

/**
 * Connects without verifying, to read the CA certificate the server presents at the top of its chain
 * (and whether public CAs trust it). `alpn` picks the service behind a proxy (ward-auth + h2: the auth server).
 */
export function fetchProxyCA(
  addr: string,
  timeoutMs = 10_000,
  alpn = ['http/1.1'],
): Promise<ProxyCA & { publiclyTrusted: boolean }> {
  const [host, port] = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      servername: /^[\d.:]+$/.test(host) ? undefined : host,
      rejectUnauthorized: false,
      ALPNProtocols: alpn,
    });
    const timer = setTimeout(
      () => socket.destroy(new ConnectionProblem(`the proxy at ${addr} did not answer in ${timeoutMs / 1000}s`)),
      timeoutMs,
    );
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const leaf = socket.getPeerCertificate(true);
      let ca: tls.DetailedPeerCertificate | undefined = leaf;
      while (ca?.issuerCertificate && ca.issuerCertificate !== ca) ca = ca.issuerCertificate;
      socket.end();
      if (!ca?.raw || ca === leaf)
        return reject(new ConnectionProblem(`the proxy at ${addr} did not present its certificate authority`));
      const caPem = toPem(ca.raw);
      resolve({ caPem, pin: fingerprintSPKI(caPem), publiclyTrusted: socket.authorized });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      // Our own timeout says what happened already; a socket error gets the address.
      reject(
        isWardError(err)
          ? err
          : new ConnectionProblem(
              `cannot reach the proxy at ${addr}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
            ),
      );
    });
  });
}

// OpenSSL's verdicts that mean "this server's certificate does not chain to a CA you trust", by code and by text
// (an RPC error keeps only the text).
const UNTRUSTED_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_SIGNATURE_FAILURE',
]);
const UNTRUSTED_TEXT = new RegExp(
  [
    'self-signed certificate',
    'unable to verify the first certificate',
    'unable to get (local )?issuer certificate',
    'certificate signature failure',
  ].join('|'),
);

/**
 * The one-line error for a server whose certificate the client's CA bundle does not vouch for, if `err` is that
 * failure: after a TLS CA rotation reached the servers, credentials issued before it know only the old CA.
 */
export function untrustedServer(server: string, err: unknown): ConnectionProblem | undefined {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (!UNTRUSTED_CODES.has(String(code)) && !UNTRUSTED_TEXT.test(String(message ?? ''))) return undefined;
  return new ConnectionProblem(
    `${server} presents a certificate from a CA these credentials do not trust: if the cluster's TLS CA was ` +
      'rotated since they were issued, log in again (wsh login), or join a host again',
  );
}

/** Accepts a server certificate only if it names a proxy of the cluster (checkServerIdentity). */
export function checkProxyIdentity(_host: string, cert: tls.PeerCertificate): Error | undefined {
  try {
    const id = identityFromPeerCert(cert);
    if (id.kind === 'host' && id.systemRoles?.includes('proxy')) return undefined;
  } catch {
    // fall through
  }
  return new AccessDenied('the server is not a proxy of this cluster');
}

/** TLS options that accept only a proxy of the cluster whose CA is `caPem`. */
export function proxyTLSOptions(caPem: string | undefined, insecure: boolean): https.RequestOptions {
  if (insecure) return { rejectUnauthorized: false };
  if (!caPem) return {}; // public CA: normal hostname checks
  return {
    ca: [caPem],
    rejectUnauthorized: true,
    checkServerIdentity: checkProxyIdentity,
  };
}
