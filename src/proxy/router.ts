// Routing at the proxy: a target ("name:port", "id:port", "name.cluster:port") is resolved from the
// watch-fed node cache (never a backend read per connection), the user's roles must let them see the
// node, and the connection goes through the node's reverse tunnel or by TCP to its address.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AccessDenied, ConnectionProblem, NotFound } from '../api/errors.ts';
import type { Node } from '../api/types.ts';
import type { ResourceCache } from '../cache/resources.ts';
import { canReachNode } from '../node/access.ts';
import { describeLock, lockFor } from '../rbac/locks.ts';

export interface TunnelDialer {
  /** `user` is counted against the tunnel's per-user stream limit; only clientAddr and target reach the agent. */
  dial(hostId: string, meta: { clientAddr: string; target: string; user: string }, signal?: AbortSignal): Promise<Duplex>;
}

export interface Grants {
  user: string;
  roles: string[];
  traits: Record<string, string[]>;
}

const DIAL_TIMEOUT_MS = 10_000;

export class Router {
  constructor(
    private readonly cache: ResourceCache,
    private readonly cluster: string,
    private readonly tunnels?: TunnelDialer,
  ) {}

  /** Nodes whose id, host name or host.cluster name is `host`. Several = ambiguous. */
  resolve(host: string): Node[] {
    const name = host.endsWith(`.${this.cluster}`) ? host.slice(0, -this.cluster.length - 1) : host;
    return this.cache.list('node').filter((n) => n.metadata.name === host || n.spec.hostname === name || n.spec.hostname === host);
  }

  /** Opens a byte stream to the node's SSH port. Refusals never say whether the node exists. */
  async dial(grants: Grants, host: string, port: number, clientAddr: string): Promise<Duplex> {
    const visible = this.resolve(host).filter((n) =>
      canReachNode(this.cache, grants, { name: n.spec.hostname, labels: n.metadata.labels ?? {} }),
    );
    if (visible.length === 0) throw new NotFound(`node "${host}" not found`);
    if (visible.length > 1) throw new AccessDenied(`"${host}" names ${visible.length} nodes: use the node id`);
    const node = visible[0]!;
    const lock = lockFor(this.cache.list('lock'), { user: grants.user, roles: grants.roles, node: { name: node.spec.hostname, id: node.metadata.name } }, new Date());
    if (lock) throw new AccessDenied(describeLock(lock));
    if (node.spec.tunnel) {
      if (!this.tunnels) throw new ConnectionProblem(`node "${host}" is reached by tunnel, and this proxy has none`);
      return this.tunnels.dial(node.metadata.name, { clientAddr, target: `${host}:${port}`, user: grants.user });
    }
    // Whatever port the client named (22 by OpenSSH's default), the proxy only ever reaches the node's
    // SSH port: it is a door to SSH servers, not a way to any port on their hosts.
    void port;
    const [addrHost, addrPort] = splitNodeAddr(node.spec.addr);
    return dialTCP(addrHost, addrPort);
  }
}

function splitNodeAddr(addr: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr);
  if (!m) throw new ConnectionProblem(`node address "${addr}" is not host:port`);
  return [m[1] ?? m[2]!, Number(m[3])];
}

function dialTCP(host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new ConnectionProblem(`timed out connecting to ${host}:${port}`)), DIAL_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof ConnectionProblem ? err : new ConnectionProblem(`cannot reach the node at ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
  });
}
