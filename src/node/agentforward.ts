// SSH agent forwarding (`ssh -A`, OpenSSH PROTOCOL 2.x "auth-agent@openssh.com"): the node listens on
// a unix socket only the login can reach and opens an auth-agent channel back to the client for each
// program that connects to it, as sshd does. One socket per connection, removed when it ends.
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { openAgentChannel } from '../ssh/ssh2hooks.ts';
import type { ConnContext } from './connection.ts';

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
  openAgentChannel(ctx.client, (err, channel) => {
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
