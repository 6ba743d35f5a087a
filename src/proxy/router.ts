// Routing at the proxy: a target ("name:port", "id:port", "name.cluster:port") is resolved from the
// watch-fed node cache (never a backend read per connection), the user's roles must let them see the
// node, and the connection goes through the node's reverse tunnel or by mutual TLS to its address.
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Duplex } from 'node:stream';
import { AccessDenied, ConnectionProblem, NotFound } from '../api/errors.ts';
import type { Node } from '../api/types.ts';
import { ALPN_NODE_SSH, hostIdentityMismatch, tlsTrustBundle } from '../api/nodessh.ts';
import type { ResourceCache } from '../cache/resources.ts';
import { canReachNode } from '../rbac/sshaccess.ts';
import { identityRefusal } from '../rbac/identity.ts';
import type { Clock } from '../time/clock.ts';

export interface TunnelDialer {
  /** `user` is counted against the tunnel's per-user stream limit; only clientAddr and target reach the agent. */
  dial(
    hostId: string,
    meta: { clientAddr: string; target: string; user: string },
    signal?: AbortSignal,
  ): Promise<Duplex>;
}

export interface Grants {
  user: string;
  roles: string[];
  traits: Record<string, string[]>;
}

/** How the proxy proves itself to the nodes it dials directly. */
export interface NodeTLS {
  /** The proxy's TLS identity now (its host certificate, system role proxy; renewed ones from the next dial on). */
  identity(): { keyPem: string; certPem: string };
  log: Logger;
}

const DIAL_TIMEOUT_MS = 10_000;

export interface RouterOptions {
  /** The nodes' reverse tunnels, for nodes that joined through one. */
  tunnels?: TunnelDialer;
  /** How to dial the nodes reached directly. */
  nodeTLS?: NodeTLS;
  /** The proxy's clock: whether a lock or a user's lockout is still in force is read from it. */
  clock: Clock;
}

export class Router {
  private readonly tunnels: TunnelDialer | undefined;
  private readonly nodeTLS: NodeTLS | undefined;
  private readonly clock: Clock;
  private context: { material: string; context: tls.SecureContext } | undefined;

  constructor(
    private readonly cache: ResourceCache,
    private readonly cluster: string,
    opts: RouterOptions,
  ) {
    this.tunnels = opts.tunnels;
    this.nodeTLS = opts.nodeTLS;
    this.clock = opts.clock;
  }

  /** Nodes whose id, host name or host.cluster name is `host`. Several = ambiguous. */
  resolve(host: string): Node[] {
    const name = host.endsWith(`.${this.cluster}`) ? host.slice(0, -this.cluster.length - 1) : host;
    return this.cache
      .list('node')
      .filter((n) => n.metadata.name === host || n.spec.hostname === name || n.spec.hostname === host);
  }

  /** Opens a byte stream to the node's SSH port. Refusals never say whether the node exists. */
  async dial(grants: Grants, host: string, port: number, clientAddr: string): Promise<Duplex> {
    const visible = this.resolve(host).filter((n) =>
      canReachNode(this.cache, grants, { name: n.spec.hostname, labels: n.metadata.labels ?? {} }),
    );
    if (visible.length === 0) throw new NotFound(`node "${host}" not found`);
    if (visible.length > 1) throw new AccessDenied(`"${host}" names ${visible.length} nodes: use the node id`);
    const node = visible[0]!;
    // A node is locked by its host id; its host name is the one its certificate names (auth checks each heartbeat).
    const target = {
      user: grants.user,
      roles: grants.roles,
      node: { id: node.metadata.name, name: node.spec.hostname },
    };
    const refusal = identityRefusal(
      this.cache.get('user', grants.user),
      this.cache.list('lock'),
      target,
      this.clock.now(),
    );
    if (refusal) throw new AccessDenied(refusal);
    if (node.spec.tunnel) {
      if (!this.tunnels) throw new ConnectionProblem(`node "${host}" is reached by tunnel, and this proxy has none`);
      return this.tunnels.dial(node.metadata.name, { clientAddr, target: `${host}:${port}`, user: grants.user });
    }
    // Whatever port the client named (22 by OpenSSH's default), the proxy only ever reaches the node's
    // SSH port: it is a door to SSH servers, not a way to any port on their hosts.
    void port;
    const [addrHost, addrPort] = splitNodeAddr(node.spec.addr);
    if (!this.nodeTLS)
      throw new ConnectionProblem(`node "${host}" is reached directly, and this proxy has no TLS identity for it`);
    // What a node heartbeats as its address is its own word: the proxy splices a user only to an end that proves,
    // in mutual TLS, that it is this node (docs/nodes.md). Anything else at that address gets a ClientHello, no more.
    const socket = await dialTCP(addrHost, addrPort);
    try {
      return await this.handshakeNode(socket, node, `${addrHost}:${addrPort}`);
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /**
   * The TLS context for dialling nodes, made once per (certificate, trusted CAs) rather than per dial (it parses the
   * key and every CA: ~0.75 ms, as the tunnel client measured); a renewal or a CA rotation makes a new one.
   */
  private nodeContext(id: { keyPem: string; certPem: string }, cas: string[]): tls.SecureContext {
    const material = id.certPem + cas.join('');
    if (this.context?.material !== material) {
      this.context = {
        material,
        context: tls.createSecureContext({ key: id.keyPem, cert: id.certPem, ca: cas, minVersion: 'TLSv1.3' }),
      };
    }
    return this.context.context;
  }

  private handshakeNode(raw: net.Socket, node: Node, addr: string): Promise<tls.TLSSocket> {
    const { log } = this.nodeTLS!;
    const id = this.nodeTLS!.identity();
    const cas = tlsTrustBundle(this.cache.get('cert_authority', 'tls'));
    if (cas.length === 0)
      return Promise.reject(new ConnectionProblem("this proxy does not know the cluster's TLS CA yet"));
    const refuse = (reason: string) => {
      log.warn(
        { node: node.spec.hostname, host_id: node.metadata.name, addr, reason },
        'refused to connect a user to a node',
      );
      return new ConnectionProblem(
        `node "${node.spec.hostname}" at ${addr} did not prove it is that node: not connecting`,
      );
    };
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        socket: raw,
        secureContext: this.nodeContext(id, cas),
        ALPNProtocols: [ALPN_NODE_SSH],
        // The address may be an IP or a name the certificate lacks: the host id check below replaces name checks.
        checkServerIdentity: () => undefined,
      });
      const timer = setTimeout(
        () => socket.destroy(new Error(`no TLS handshake in ${DIAL_TIMEOUT_MS / 1000}s`)),
        DIAL_TIMEOUT_MS,
      );
      let handshaking = true;
      // Kept for the connection's life: a later error belongs to whoever splices it, and is not a refusal.
      socket.on('error', (err) => {
        if (!handshaking) return;
        handshaking = false;
        clearTimeout(timer);
        reject(refuse(err.message));
      });
      socket.once('secureConnect', () => {
        handshaking = false;
        clearTimeout(timer);
        const reason =
          socket.alpnProtocol !== ALPN_NODE_SSH
            ? `it did not answer with ${ALPN_NODE_SSH}`
            : hostIdentityMismatch(socket.getPeerCertificate(), {
                cluster: this.cluster,
                systemRole: 'node',
                hostId: node.metadata.name,
              });
        if (reason) {
          socket.destroy();
          return reject(refuse(reason));
        }
        socket.setNoDelay(true);
        resolve(socket);
      });
    });
  }
}

function splitNodeAddr(addr: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr);
  if (!m) throw new ConnectionProblem(`node address "${addr}" is not host:port`);
  return [m[1] ?? m[2]!, Number(m[3])];
}

function dialTCP(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(
      () => socket.destroy(new ConnectionProblem(`timed out connecting to ${host}:${port}`)),
      DIAL_TIMEOUT_MS,
    );
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(
        err instanceof ConnectionProblem
          ? err
          : new ConnectionProblem(
              `cannot reach the node at ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
            ),
      );
    });
  });
}
