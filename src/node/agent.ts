// SSH agent forwarding (`ssh -A`, OpenSSH PROTOCOL 2.x "auth-agent@openssh.com"): the node listens on
// a unix socket only the login can reach and opens an auth-agent channel back to the client for each
// program that connects to it, as sshd does. One socket per connection, removed when it ends.
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Channel } from 'ssh2';
import type { ConnContext } from './connection.ts';

// ssh2's own channel window and packet size (lib/Channel.js); the confirmation handler assumes them.
const MAX_WINDOW = 2 * 1024 * 1024;
const PACKET_SIZE = 32 * 1024;

/** ssh2 has no server-side call to open an auth-agent channel; its protocol layer has the message. */
interface ClientInternals {
  _chanMgr: { add(cb: unknown): number; remove(id: number): void };
  _protocol: { openssh_authAgent(chan: number, window: number, packetSize: number): void };
}

const forwarders = new WeakMap<ConnContext, Promise<string>>();

/** The SSH_AUTH_SOCK path for this connection, created on the first auth-agent-req. */
export function agentForwarder(ctx: ConnContext): Promise<string> {
  let p = forwarders.get(ctx);
  if (!p) {
    p = listenAgent(ctx);
    forwarders.set(ctx, p);
  }
  return p;
}

async function listenAgent(ctx: ConnContext): Promise<string> {
  const { uid, gid } = ctx.identity.osUser;
  // A fresh 0700 directory owned by the login: no other user can reach the socket or race its name.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ward-agent-'));
  const sockPath = path.join(dir, 'agent.sock');
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((sock) => forward(ctx, sock, sockets));
  let closed = false;
  ctx.onClose(() => {
    closed = true;
    srv.close();
    for (const s of sockets) s.destroy();
    void fs.rm(dir, { recursive: true, force: true });
  });
  await fs.chmod(dir, 0o700);
  await fs.chown(dir, uid, gid);
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(sockPath, () => resolve());
  });
  srv.on('error', (err) => ctx.log.debug({ err }, 'agent listener error'));
  await fs.chown(sockPath, uid, gid);
  await fs.chmod(sockPath, 0o600);
  if (closed) srv.close();
  return sockPath;
}

function forward(ctx: ConnContext, sock: net.Socket, sockets: Set<net.Socket>): void {
  sockets.add(sock);
  sock.on('error', () => {});
  sock.once('close', () => sockets.delete(sock));
  const release = ctx.acquireChannel();
  if (!release) {
    sock.destroy();
    return;
  }
  openAgentChannel(ctx, (err, channel) => {
    if (err || !channel) {
      release();
      ctx.log.debug({ err: err?.message }, 'client refused the agent channel');
      sock.destroy();
      return;
    }
    channel.on('error', () => {});
    channel.once('close', () => {
      release();
      sock.destroy();
    });
    sock.once('close', () => channel.destroy());
    sock.pipe(channel);
    channel.pipe(sock);
  });
}

function openAgentChannel(ctx: ConnContext, cb: (err: Error | undefined, channel?: Channel) => void): void {
  const internals = ctx.client as unknown as ClientInternals;
  // The same callback shape as ssh2's openChannel(): CHANNEL_OPEN_CONFIRMATION / _FAILURE call it.
  const wrapper = (err: Error | undefined, stream?: Channel): void => cb(err, stream);
  wrapper.type = 'auth-agent@openssh.com';
  const id = internals._chanMgr.add(wrapper);
  if (id === -1) return cb(new Error('no free channels'));
  internals._protocol.openssh_authAgent(id, MAX_WINDOW, PACKET_SIZE);
}
