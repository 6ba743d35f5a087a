// Port forwarding through a node (RFC 4254 7): `direct-tcpip` channels (ssh -L) dial out from the node,
// `tcpip-forward` requests (ssh -R) listen on the node and hand each connection back to the client as a
// `forwarded-tcpip` channel. Both only when the user's roles permit it; every attempt is audited. Remote
// forwards listen on loopback only, as under sshd's default `GatewayPorts no`, unless a role allows more.
import net from 'node:net';
import type { AcceptConnection, Channel, RejectConnection, ServerChannel, TcpipBindInfo, TcpipRequestInfo } from 'ssh2';
import type { ConnContext } from './connection.ts';

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
  const fields = {
    user: ctx.identity.user,
    login: ctx.identity.login,
    conn: ctx.id,
    kind: 'local',
    addr: `${info.destIP}:${info.destPort}`,
  };
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

/** Where one `ssh -R` listener binds: a host for net.Server.listen, IPv6 only where IPv4 is bound beside it. */
export interface BindAddress {
  host: string;
  ipv6Only?: boolean;
}

const LOOPBACK: readonly BindAddress[] = [{ host: '127.0.0.1' }, { host: '::1' }];
const WILDCARD: readonly BindAddress[] = [{ host: '0.0.0.0' }, { host: '::', ipv6Only: true }];

/**
 * The addresses a `tcpip-forward` for `requested` listens on, as sshd decides them (OpenSSH channels.c,
 * channel_fwd_bind_addr). `GatewayPorts no` (gateway false): loopback, both families, whatever was asked ("",
 * "*", "0.0.0.0", a host's address or name alike), except that an explicit "127.0.0.1" or "::1" binds just that.
 * `GatewayPorts clientspecified` (gateway true): "" and "*" bind every address, "localhost" loopback, any other
 * address or name just that one.
 */
export function bindAddresses(requested: string, gateway: boolean): readonly BindAddress[] {
  if (requested === '127.0.0.1' || requested === '::1') return [{ host: requested }];
  if (!gateway || requested === 'localhost') return LOOPBACK;
  if (requested === '' || requested === '*') return WILDCARD;
  return [{ host: requested }];
}

/** The `ssh -R` listeners of one connection; one forward may listen on several addresses (both loopbacks). */
export class RemoteForwards {
  private readonly listeners = new Map<string, net.Server[]>();
  private closed = false;

  constructor(private readonly ctx: ConnContext) {
    ctx.onClose(() => {
      this.closed = true;
      for (const servers of this.listeners.values()) for (const srv of servers) srv.close();
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
    const fields = {
      user: ctx.identity.user,
      login: ctx.identity.login,
      conn: ctx.id,
      kind: 'remote',
      addr: `${info.bindAddr}:${info.bindPort}`,
    };
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
    const servers: net.Server[] = [];
    this.listeners.set(key, servers);
    void this.bindAll(bindAddresses(info.bindAddr, ctx.identity.permitGatewayPorts), info, servers).then((port) => {
      // The connection may have ended while binding: its close already ran, so these are closed here.
      if (port === undefined || this.closed || this.listeners.get(key) !== servers) {
        for (const srv of servers) srv.close();
        if (this.listeners.get(key) === servers) this.listeners.delete(key);
        return refuse('listen failed');
      }
      if (info.bindPort === 0) this.listeners.set(`${info.bindAddr}:${port}`, servers);
      const bound = servers.map((srv) => {
        const a = srv.address() as net.AddressInfo;
        return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
      });
      ctx.emit('port', { ...fields, success: true, port, bound });
      accept?.(port);
    });
  }

  /**
   * Listens on each address in turn, the later ones on the port the first got (as sshd does for port 0). One that
   * cannot be bound (no IPv6 on this host) is skipped, as by sshd, if another was. Resolves with the port, or
   * undefined if none could be bound.
   */
  private async bindAll(
    addrs: readonly BindAddress[],
    info: TcpipBindInfo,
    servers: net.Server[],
  ): Promise<number | undefined> {
    let port = info.bindPort;
    for (const addr of addrs) {
      const srv = net.createServer((sock) => this.forwardIn(port, info, sock));
      const ok = await new Promise<boolean>((resolve) => {
        srv.once('error', (err) => {
          this.ctx.log.debug({ err: err.message, addr: `${addr.host}:${port}` }, 'remote forward listen failed');
          resolve(false);
        });
        srv.listen({ host: addr.host, port, ipv6Only: addr.ipv6Only }, () => resolve(true));
      });
      if (!ok) continue;
      srv.removeAllListeners('error');
      srv.on('error', () => {});
      servers.push(srv);
      port = (srv.address() as net.AddressInfo).port;
    }
    return servers.length > 0 ? port : undefined;
  }

  private cancel(accept: ReqAccept, reject: ReqReject, info: TcpipBindInfo): void {
    const key = `${info.bindAddr}:${info.bindPort}`;
    const servers = this.listeners.get(key);
    if (!servers) return reject?.();
    for (const [k, s] of this.listeners) if (s === servers) this.listeners.delete(k);
    for (const srv of servers) srv.close();
    accept?.();
  }

  private forwardIn(port: number, info: TcpipBindInfo, sock: net.Socket): void {
    const { ctx } = this;
    sock.on('error', () => {});
    const release = ctx.acquireChannel();
    if (!release) return void sock.destroy();
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
