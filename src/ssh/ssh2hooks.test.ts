// ssh2hooks.ts against the real OpenSSH client: the socket behind a connection, the channel-data tap an idle
// timeout uses, and agent channels opened to `ssh -A` (the patch's openssh_authAgent). An ssh2 upgrade that
// moves these internals fails here rather than in a node or proxy.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import ssh2 from 'ssh2';
import type { Channel, Connection, ServerChannel } from 'ssh2';
import { formatOpenSSHPrivateKey } from '../crypto/sshkeys.ts';
import { cleanup, makeTempDir, run } from '../../test/harness.ts';
import { connectionSocket, onChannelData, openAgentChannel } from './ssh2hooks.ts';

const WAIT = 10_000; // every wait on a peer is bounded by this
const SSH2_AGENTC_REQUEST_IDENTITIES = 11; // draft-miller-ssh-agent 4.4
const SSH2_AGENT_IDENTITIES_ANSWER = 12;

let dir = '';
let port = 0;
let listener: net.Server;
let agent: ChildProcess | undefined;
let keepalives = 0; // keepalive@openssh.com global requests the server has received
const agentSock = (): string => path.join(dir, 'agent.sock');

/** Asks the client's agent for its identities over a server-opened channel; resolves with the key count. */
function countAgentKeys(conn: Connection): Promise<number> {
  return new Promise((resolve, reject) => {
    openAgentChannel(conn, (err, channel?: Channel) => {
      if (err || !channel) return reject(err ?? new Error('no channel'));
      const timer = setTimeout(() => {
        channel.close();
        reject(new Error('agent did not answer'));
      }, WAIT);
      let got = Buffer.alloc(0);
      channel.on('error', reject);
      channel.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length < 4 || got.length < 4 + got.readUInt32BE(0)) return;
        clearTimeout(timer);
        channel.end();
        if (got[4] !== SSH2_AGENT_IDENTITIES_ANSWER) return reject(new Error(`agent answered type ${got[4]}`));
        resolve(got.readUInt32BE(5));
      });
      channel.write(Buffer.from([0, 0, 0, 1, SSH2_AGENTC_REQUEST_IDENTITIES]));
    });
  });
}

/** The test server's commands: what each exec reports on the channel before it exits. */
function exec(
  conn: Connection,
  accepted: net.Socket | undefined,
  taps: () => number,
  command: string,
  stream: ServerChannel,
): void {
  const finish = (line: string): void => {
    stream.write(`${line}\n`);
    stream.exit(0);
    stream.end();
  };
  if (command === 'socket') {
    const sock = connectionSocket(conn);
    return finish(`same=${sock !== undefined && sock === accepted} local=${sock?.localPort}`);
  }
  if (command === 'agent') {
    return void countAgentKeys(conn).then(
      (n) => finish(`keys=${n}`),
      (err: Error) => finish(`refused: ${err.message}`),
    );
  }
  if (command === 'idle') {
    // Long enough for `ServerAliveInterval=1` keepalives, which are global requests and not channel data.
    return void setTimeout(() => finish(`taps=${taps()}`), 2_500);
  }
  if (command === 'echo') {
    stream.on('data', (d: Buffer) => stream.write(d));
    return void stream.once('end', () => finish(`taps=${taps()}`));
  }
  finish('unknown command');
}

before(async () => {
  dir = makeTempDir('ward-ssh2hooks-');
  const hostKey = formatOpenSSHPrivateKey(crypto.generateKeyPairSync('ed25519').privateKey);
  const sshd = new ssh2.Server({
    hostKeys: [hostKey],
    debug: (line: string) => void (/Inbound: GLOBAL_REQUEST \(keepalive@openssh\.com\)/.test(line) && keepalives++),
  });
  // The sockets handed to ssh2, in order: the connection that reaches 'ready' first is the oldest one open.
  const accepted: net.Socket[] = [];
  sshd.on('connection', (conn) => {
    const mine = accepted.shift();
    let taps = 0;
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => ctx.accept()); // any user, no keys: the hooks, not auth, are under test
    conn.on('ready', () => {
      onChannelData(conn, () => taps++);
      conn.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('auth-agent', (accept) => accept?.());
        session.on('exec', (accept, _reject, info) => exec(conn, mine, () => taps, info.command, accept()));
      });
    });
  });
  listener = net.createServer((sock) => {
    accepted.push(sock);
    sshd.injectSocket(sock);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as net.AddressInfo).port;

  const userKey = path.join(dir, 'id_ed25519');
  fs.writeFileSync(userKey, formatOpenSSHPrivateKey(crypto.generateKeyPairSync('ed25519').privateKey), { mode: 0o600 });
  agent = spawn('ssh-agent', ['-D', '-a', agentSock()], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !fs.existsSync(agentSock()); i++) await new Promise((r) => setTimeout(r, 50));
  const add = await run('ssh-add', [userKey], { env: { SSH_AUTH_SOCK: agentSock() } });
  assert.equal(add.code, 0, add.stderr);
});

after(async () => {
  agent?.kill();
  listener?.close();
  await cleanup();
});

function ssh(args: string[], stdin?: string) {
  const base = [
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    `ConnectTimeout=${WAIT / 1000}`,
    '-p',
    String(port),
  ];
  return run('ssh', [...base, ...args], { stdin, env: { SSH_AUTH_SOCK: agentSock() }, timeoutMs: WAIT });
}

describe('ssh2 hooks against real ssh', () => {
  it('finds the socket a connection was served on', async () => {
    const r = await ssh(['-n', 'u@127.0.0.1', 'socket']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `same=true local=${port}\n`);
  });

  it('taps every channel data message the client sends', async () => {
    const r = await ssh(['u@127.0.0.1', 'echo'], 'hello\n');
    assert.equal(r.code, 0, r.stderr);
    const m = /^hello\ntaps=(\d+)\n$/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.ok(Number(m[1]) >= 1, r.stdout);
  });

  it('sees no channel data from a client that sends none, keepalives included', async () => {
    keepalives = 0;
    const r = await ssh(['-n', '-o', 'ServerAliveInterval=1', 'u@127.0.0.1', 'idle']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'taps=0\n');
    assert.ok(keepalives > 0, 'the client sent keepalives meanwhile');
  });

  it('opens an agent channel to `ssh -A` and reaches the forwarded agent', async () => {
    const r = await ssh(['-n', '-A', 'u@127.0.0.1', 'agent']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'keys=1\n');
  });

  it('gets the agent channel refused by a client that did not forward its agent', async () => {
    const r = await ssh(['-n', '-o', 'ForwardAgent=no', 'u@127.0.0.1', 'agent']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^refused: \(SSH\) Channel open failure/);
    assert.match(r.stderr, /tried agent forwarding/);
  });
});
