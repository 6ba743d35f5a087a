// `wsh proxy ssh`, the ProxyCommand of `wsh ssh`, `wsh scp` and `wsh config`: stdin/stdout become the
// SSH connection to the node, carried inside mutual TLS through the proxy (src/proxy/sshtls.ts is the
// other end). It starts on every ssh connection, so it imports only what it needs: no Auth API client,
// no X.509 library (that alone took 150-300 ms to load). `wsh bench` dials the
// same route with dialNode and speaks SSH over the socket itself.
import tls from 'node:tls';
import { splitAddr } from '../../api/addr.ts';
import type { TLSIdentity } from '../../api/client.ts';
import { AccessDenied, BadParameter, ConnectionProblem } from '../../api/errors.ts';
import { checkProxyIdentity, untrustedServer } from '../../api/trust.ts';
import { loadCurrentLogin } from './profile.ts';

/** The ALPN of SSH inside TLS at the proxy. */
const ALPN_PROXY_SSH = 'ward-proxy-ssh';
/** The proxy answers the target line within this time, or the dial fails. */
const ROUTE_TIMEOUT_MS = 15_000;

/**
 * Mutual TLS to the proxy, the target line, the proxy's OK: the socket is then the byte stream of an SSH
 * connection to the node. It resolves paused, with any bytes the node already sent pushed back, so the
 * caller's first reader sees the SSH banner.
 */
export function dialNode(
  proxy: string,
  identity: TLSIdentity,
  host: string,
  port: number,
  signal?: AbortSignal,
): Promise<tls.TLSSocket> {
  const [proxyHost, proxyPort] = splitAddr(proxy);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: proxyHost,
      port: proxyPort,
      ALPNProtocols: [ALPN_PROXY_SSH],
      key: identity.keyPem,
      cert: identity.certPem,
      ca: identity.caPems,
      servername: /^[\d.:]+$/.test(proxyHost) ? undefined : proxyHost,
      checkServerIdentity: checkProxyIdentity,
    });
    const fail = (err: Error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new ConnectionProblem(`the proxy at ${proxy} did not answer within ${ROUTE_TIMEOUT_MS / 1000}s`)),
      ROUTE_TIMEOUT_MS,
    );
    const onAbort = () => fail(new ConnectionProblem('cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.setNoDelay(true); // interactive SSH: no Nagle delay on keystrokes and handshake messages
    const onError = (err: Error) => {
      const unreachable = new ConnectionProblem(`cannot reach the proxy at ${proxy}: ${err.message}`);
      fail(untrustedServer(`the proxy at ${proxy}`, err) ?? unreachable);
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => socket.write(`${host}:${port}\n`));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(0x0a);
      if (nl < 0)
        return head.length > 1024 ? fail(new ConnectionProblem('the proxy sent a malformed answer')) : undefined;
      socket.off('data', onData);
      socket.off('close', onClose);
      const line = head.subarray(0, nl).toString('utf8');
      if (line !== 'OK') return fail(new AccessDenied(line.replace(/^ERR /, '')));
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.pause();
      const rest = head.subarray(nl + 1);
      if (rest.length) socket.unshift(rest);
      resolve(socket);
    };
    const onClose = () => fail(new ConnectionProblem(`the proxy at ${proxy} closed the connection`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** The ProxyCommand: stdin/stdout become the SSH connection to the node, through the proxy. */
export async function proxySSH(target: string): Promise<void> {
  const { profile, creds } = loadCurrentLogin();
  const identity = { keyPem: creds.tlsKey, certPem: creds.tlsCert, caPems: creds.tlsCAs };
  const hostPort = target.slice(target.lastIndexOf('@') + 1);
  const m = /^(.+?)(?::(\d{1,5}))?$/.exec(hostPort);
  if (!m) throw new BadParameter(`invalid target "${target}" (expected [login@]node[:port])`);
  const socket = await dialNode(profile.proxy, identity, m[1]!, Number(m[2] ?? 22));
  await new Promise<void>((resolve) => {
    process.stdin.pipe(socket);
    socket.pipe(process.stdout);
    socket.once('close', () => resolve());
    socket.on('error', () => undefined); // the close that follows ends the command, as before
  });
}
