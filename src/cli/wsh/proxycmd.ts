// `wsh proxy ssh`, the ProxyCommand of `wsh ssh`, `wsh scp` and `wsh config`: stdin/stdout become the
// SSH connection to the node, carried inside mutual TLS through the proxy (src/proxy/sshtls.ts is the
// other end). It starts on every ssh connection, so it imports only what it needs.
import tls from 'node:tls';
import { splitAddr } from '../../api/client.ts';
import { AccessDenied, BadParameter, ConnectionProblem } from '../../api/errors.ts';
import { checkProxyIdentity } from '../../api/trust.ts';
import { loadProfile } from './profile.ts';

/** The ALPN of SSH inside TLS at the proxy. */
const ALPN_PROXY_SSH = 'ward-proxy-ssh';

/** The ProxyCommand: stdin/stdout become the SSH connection to the node, through the proxy. */
export function proxySSH(target: string): Promise<void> {
  const { profile, creds } = loadProfile();
  const identity = { keyPem: creds.tlsKey, certPem: creds.tlsCert, caPems: creds.tlsCAs };
  const hostPort = target.slice(target.lastIndexOf('@') + 1);
  const m = /^(.+?)(?::(\d{1,5}))?$/.exec(hostPort);
  if (!m) throw new BadParameter(`invalid target "${target}" (expected [login@]node[:port])`);
  const [host, port] = splitAddr(profile.proxy);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host, port, ALPNProtocols: [ALPN_PROXY_SSH], key: identity.keyPem, cert: identity.certPem, ca: identity.caPems,
      servername: /^[\d.:]+$/.test(host) ? undefined : host,
      checkServerIdentity: checkProxyIdentity,
    });
    socket.setNoDelay(true); // interactive SSH: no Nagle delay on keystrokes and handshake messages
    socket.once('error', (err) => reject(new ConnectionProblem(`cannot reach the proxy at ${profile.proxy}: ${err.message}`)));
    socket.once('secureConnect', () => socket.write(`${m[1]}:${m[2] ?? 22}\n`));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(0x0a);
      if (nl < 0) return head.length > 1024 ? socket.destroy() : undefined;
      socket.off('data', onData);
      const line = head.subarray(0, nl).toString('utf8');
      if (line !== 'OK') return reject(new AccessDenied(line.replace(/^ERR /, '')));
      const rest = head.subarray(nl + 1);
      if (rest.length) process.stdout.write(rest);
      process.stdin.pipe(socket);
      socket.pipe(process.stdout);
      socket.once('close', () => resolve());
    };
    socket.on('data', onData);
  });
}
