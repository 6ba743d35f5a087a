// Port forwarding through a node (RFC 4254 7): `direct-tcpip` channels (ssh -L) dial out from the node,
// `tcpip-forward` requests (ssh -R) listen on the node and hand each connection back to the client as a
// `forwarded-tcpip` channel. Both only when the user's roles permit it; every attempt is audited.
import net from 'node:net';
import type { AcceptConnection, Channel, RejectConnection, ServerChannel, TcpipBindInfo, TcpipRequestInfo } from 'ssh2';
import type { ConnContext } from './server.ts';

const CONNECT_TIMEOUT_MS = 10_000;

/** Joins a channel and a TCP socket both ways; either side closing tears the other down. */
function splice(channel: Channel | ServerChannel, sock: net.Socket, release: () => void): void {
  channel.on('error', () => {});
  sock.on('error', () => channel.destroy());
  channel.once('close', () => {
    release();
    sock.destroy();
  });
  sock.once('close', () => channel.end());
  channel.pipe(sock);
  sock.pipe(channel);
}

export function handleDirectTcpip(
  ctx: ConnContext,
  accept: AcceptConnection<ServerChannel>,
  reject: RejectConnection,
  info: TcpipRequestInfo,
): void {
  const fields = { user: ctx.identity.user, login: ctx.identity.login, conn: ctx.id, kind: 'local', addr: `${info.destIP}:${info.destPort}` };
  if (!ctx.identity.permitPortForwarding) {
    ctx.emit('port', { ...fields, success: false, reason: 'port forwarding not permitted' });
    return reject();
  }
  const release = ctx.acquireChannel();
  if (!release) return reject();
  const sock = net.connect({ host: info.destIP, port: info.destPort, timeout: CONNECT_TIMEOUT_MS });
  const dropOnClose = (): void => {
    sock.destroy();
  };
  ctx.onClose(dropOnClose);
  sock.once('timeout', () => sock.destroy(new Error('connect timeout')));
  sock.once('error', (err) => {
    ctx.log.debug({ err: err.message, addr: fields.addr }, 'direct-tcpip connect failed');
    ctx.emit('port', { ...fields, success: false, reason: 'connect failed' });
    release();
    reject();
  });
  sock.once('connect', () => {
    sock.setTimeout(0);
    sock.removeAllListeners('error');
    ctx.emit('port', { ...fields, success: true });
    splice(accept(), sock, release);
  });
}

type ReqAccept = ((chosenPort?: number) => void) | undefined;
type ReqReject = (() => void) | undefined;

/** The `ssh -R` listeners of one connection. */
export class RemoteForwards {
  private readonly listeners = new Map<string, net.Server>();

  constructor(private readonly ctx: ConnContext) {
    ctx.onClose(() => {
      for (const srv of this.listeners.values()) srv.close();
      this.listeners.clear();
    });
  }

  onRequest(accept: ReqAccept, reject: ReqReject, name: string, info: unknown): void {
    if (name === 'tcpip-forward') this.listen(accept, reject, info as TcpipBindInfo);
    else if (name === 'cancel-tcpip-forward') this.cancel(accept, reject, info as TcpipBindInfo);
    else reject?.();
  }

  private listen(accept: ReqAccept, reject: ReqReject, info: TcpipBindInfo): void {
    const { ctx } = this;
    const fields = { user: ctx.identity.user, login: ctx.identity.login, conn: ctx.id, kind: 'remote', addr: `${info.bindAddr}:${info.bindPort}` };
    const refuse = (reason: string): void => {
      ctx.emit('port', { ...fields, success: false, reason });
      reject?.();
    };
    if (!ctx.identity.permitPortForwarding) return refuse('port forwarding not permitted');
    if (!Number.isInteger(info.bindPort) || info.bindPort < 0 || info.bindPort > 65535) return refuse('bad port');
    // As sshd: only root may listen on a privileged port.
    if (info.bindPort !== 0 && info.bindPort < 1024 && ctx.identity.osUser.uid !== 0) return refuse('privileged port');
    if (this.listeners.size >= ctx.limits.maxRemoteForwards) return refuse('too many remote forwards');
    const key = `${info.bindAddr}:${info.bindPort}`;
    if (this.listeners.has(key)) return refuse('already forwarded');
    const srv = net.createServer((sock) => this.forwardIn(srv, info, sock));
    srv.once('error', (err) => {
      ctx.log.debug({ err: err.message, addr: key }, 'remote forward listen failed');
      this.listeners.delete(key);
      refuse('listen failed');
    });
    this.listeners.set(key, srv);
    srv.listen({ host: bindHost(info.bindAddr), port: info.bindPort }, () => {
      srv.removeAllListeners('error');
      srv.on('error', () => {});
      const port = (srv.address() as net.AddressInfo).port;
      if (info.bindPort === 0) this.listeners.set(`${info.bindAddr}:${port}`, srv);
      ctx.emit('port', { ...fields, success: true, port });
      accept?.(port);
    });
  }

  private cancel(accept: ReqAccept, reject: ReqReject, info: TcpipBindInfo): void {
    const key = `${info.bindAddr}:${info.bindPort}`;
    const srv = this.listeners.get(key);
    if (!srv) return reject?.();
    for (const [k, s] of this.listeners) if (s === srv) this.listeners.delete(k);
    srv.close();
    accept?.();
  }

  private forwardIn(srv: net.Server, info: TcpipBindInfo, sock: net.Socket): void {
    const { ctx } = this;
    sock.on('error', () => {});
    const release = ctx.acquireChannel();
    if (!release) return void sock.destroy();
    const port = (srv.address() as net.AddressInfo | null)?.port ?? info.bindPort;
    // RFC 4254 7.2: the channel names the address that was requested and the port actually bound.
    ctx.client.forwardOut(info.bindAddr, port, sock.remoteAddress ?? '', sock.remotePort ?? 0, (err, channel) => {
      if (err) {
        release();
        sock.destroy();
        return;
      }
      splice(channel, sock, release);
    });
  }
}

/** The address to bind: "" and "localhost" mean loopback (sshd's GatewayPorts=no), "*" all addresses. */
function bindHost(addr: string): string {
  if (addr === '' || addr === 'localhost') return '127.0.0.1';
  if (addr === '*') return '0.0.0.0';
  return addr;
}
