// What a node says about itself is not trusted (issue 18, items 2 and 8): a host that really joined with a node
// token heartbeats an address of its choosing, and a user who can see that node then connects to it through the
// proxy. The proxy must splice users only to a node's real SSH endpoint, which proves who it is in mutual TLS on
// its SSH port (docs/nodes.md); that door opens to proxies only, and plain SSH on the same port still works.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newHostKeys } from '../../src/host/identity.ts';
import type { TLSIdentity } from '../../src/api/client.ts';
import { ALPN_NODE_SSH } from '../../src/api/nodessh.ts';
import { cleanup, delay, makeTempDir, poll, run, type Cluster, type RunResult } from '../harness.ts';
import { addUser, writeDirectSSHConfig, type TestUser } from '../users.ts';
import { ok, startTarget, type Target } from './fixture.ts';

let target: Target;
let cluster: Cluster;
let work: string;
let bob: TestUser;
/** An ssh_config with bob's keys and no ProxyCommand: for `ssh -J` through the proxy and `ssh -p` to the node. */
let directCfg: string;
/** `ssh -J` through the proxy's SSH server, as bob. */
let jump: string[];

interface JoinedHost {
  hostId: string;
  identity: TLSIdentity;
}

/** Joins a host through the proxy's Auth API pass-through with a fresh token, as `ward start --token` does. */
async function joinHost(role: 'node' | 'proxy', hostname: string, addresses: string[]): Promise<JoinedHost> {
  const token = /--token (\S+)/.exec(ok(await cluster.wctl(['tokens', 'add', '--type', role])))?.[1];
  assert.ok(token, 'wctl tokens add printed no token');
  const keys = newHostKeys();
  const res = await cluster.client(undefined, cluster.proxyAddr).registerUsingToken({
    token,
    systemRole: role,
    hostname,
    addresses,
    sshPublicKey: keys.sshPublicKey,
    tlsPublicKey: keys.tlsPublicKey,
  });
  return { hostId: res.hostId, identity: { keyPem: keys.tlsKey, certPem: res.tlsCert, caPems: res.tlsCas } };
}

function nodeResource(hostId: string, spec: { hostname: string; addr: string; tunnel?: boolean }) {
  const full = { tunnel: false, version: '0.1.0', ...spec };
  return { kind: 'node', version: 'v1', metadata: { name: hostId }, spec: full };
}

/** Waits until bob's `wsh ls` lists `hostname`: a refusal after that is the proxy's check, not a missing node. */
function bobSees(hostname: string) {
  const listed = async () => ok(await cluster.wsh(bob.wshHome, ['ls'])).includes(hostname);
  return poll(`bob to see ${hostname}`, async () => ((await listed()) ? true : undefined));
}

function heartbeat(host: JoinedHost, spec: { hostname: string; addr: string; tunnel?: boolean }) {
  const node = nodeResource(host.hostId, spec);
  return cluster.client(host.identity).heartbeat({ resource: { json: JSON.stringify(node) }, remove: false });
}

/** The first bytes of a user's SSH connection, as OpenSSH sends them. */
const USER_BYTES = 'SSH-2.0-OpenSSH_9.2p1 user-connection\r\n';

/** A TCP listener on loopback that records every byte it gets, and echoes them or greets as an SSH server would. */
async function recordingListener(mode: 'echo' | 'ssh-banner') {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    if (mode === 'ssh-banner') s.write('SSH-2.0-OpenSSH_9.2p1 not-a-ward-node\r\n');
    s.on('data', (d: Buffer) => {
      received.push(d);
      if (mode === 'echo') s.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => Buffer.concat(received),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** The one line a refused command printed (ssh's own noise about the failed connection aside). */
function refusalLine(r: RunResult): string {
  assert.notEqual(r.code, 0, `expected a refusal, got success:\n${r.stdout}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace reached the user');
  return r.stderr.trim();
}

/** Opens TLS to the node's SSH port as `identity` (none: no client certificate) and reports what came back. */
function tlsToNodePort(identity?: { keyPem: string; certPem: string }): Promise<{ data: string; closed: boolean }> {
  const [host, port] = [cluster.nodeAddr.split(':')[0]!, Number(cluster.nodeAddr.split(':')[1])];
  return new Promise((resolve) => {
    let data = '';
    const socket = tls.connect({
      host,
      port,
      ca: cluster.adminIdentity().caPems,
      ALPNProtocols: [ALPN_NODE_SSH],
      ...(identity ? { key: identity.keyPem, cert: identity.certPem } : {}),
      checkServerIdentity: () => undefined,
    });
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data, closed });
    };
    // An SSH server speaks first: a door that opened shows its version line within moments.
    const timer = setTimeout(() => done(false), 5_000);
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      if (data.includes('\n')) done(false);
    });
    socket.on('error', () => done(true));
    socket.on('close', () => done(true));
  });
}

before(async () => {
  work = makeTempDir('ward-sec-door-');
  target = await startTarget();
  cluster = target.cluster;
  bob = await addUser(cluster, work, 'bob', 'access');
  directCfg = writeDirectSSHConfig(join(work, 'bob.direct'), join(bob.keys, 'id'), join(bob.keys, 'known_hosts'));
  jump = ['-J', `bob@${cluster.proxyAddr}`];
});

after(cleanup);

describe('the proxy splices users only to real nodes', () => {
  const attacks: Array<{ name: string; mode: 'echo' | 'ssh-banner' }> = [
    { name: 'an echo server', mode: 'echo' },
    { name: 'a fake SSH server', mode: 'ssh-banner' },
  ];
  for (const [i, attack] of attacks.entries()) {
    it(`refuses a node whose heartbeat points at ${attack.name}, and relays nothing to it or from it`, async () => {
      const hostname = `impostor${i}`;
      const evil = await joinHost('node', hostname, ['127.0.0.1']);
      const listener = await recordingListener(attack.mode);
      try {
        await heartbeat(evil, { hostname, addr: `127.0.0.1:${listener.port}` });
        await bobSees(hostname);
        // The ProxyCommand OpenSSH runs (wsh proxy ssh), fed the start of a user's SSH connection; then ssh -J.
        const viaTLS = await cluster.wsh(bob.wshHome, ['proxy', 'ssh', `root@${hostname}:22`], {
          stdin: USER_BYTES,
          timeoutMs: 8_000,
        });
        const addr = `127\\.0\\.0\\.1:${listener.port}`;
        assert.match(refusalLine(viaTLS), new RegExp(`node "${hostname}" at ${addr} did not prove it is that node`));
        const sshOpts = ['-F', directCfg, '-o', 'ConnectTimeout=5', ...jump];
        const viaJump = await run('ssh', [...sshOpts, `root@${hostname}`, 'id']);
        refusalLine(viaJump);
        // Nothing from the listener reached the users.
        assert.doesNotMatch(viaTLS.stdout + viaJump.stdout + viaJump.stderr, /not-a-ward-node|user-connection/);
        // All the listener ever got is the proxy's own TLS ClientHello: no byte of the users' SSH connections.
        const got = listener.received();
        assert.ok(got.length > 0, 'the proxy did not dial the address at all');
        assert.equal(got[0], 0x16, 'the listener got something other than a TLS handshake');
        assert.ok(!got.includes('SSH-2.0'), "a user's SSH bytes reached the listener");
        const warned = (l: string) => l.includes('refused to connect a user to a node') && l.includes(`"${hostname}"`);
        const warning = cluster.log.split('\n').find(warned);
        assert.ok(warning, 'the proxy logged no warning naming the node');
      } finally {
        listener.close();
      }
    });
  }

  it("refuses a node whose heartbeat points at another node's SSH port (a certificate for another host)", async () => {
    const evil = await joinHost('node', 'borrower', ['127.0.0.1']);
    await heartbeat(evil, { hostname: 'borrower', addr: cluster.nodeAddr });
    await bobSees('borrower');
    const line = refusalLine(await cluster.wsh(bob.wshHome, ['ssh', 'root@borrower', 'hostname']));
    assert.match(line, /node "borrower" at \S+ did not prove it is that node/);
    const mismatch = /"reason":"its certificate is host [0-9a-f-]+'s"/;
    await poll('the warning', async () => (mismatch.test(cluster.log) ? true : undefined));
  });

  it('still connects users to a directly reached node: wsh ssh, OpenSSH with wsh proxy ssh, ssh -J', async () => {
    const node = `root@${target.node}`;
    assert.equal(ok(await cluster.wsh(bob.wshHome, ['ssh', node, 'echo via-wsh'])).trim(), 'via-wsh');
    const env = { WSH_HOME: bob.wshHome };
    const viaProxyCommand = await run('ssh', ['-F', bob.cfg, node, 'echo via-proxycommand'], { env });
    assert.equal(ok(viaProxyCommand).trim(), 'via-proxycommand');
    assert.equal(ok(await run('ssh', ['-F', directCfg, ...jump, node, 'echo via-jump'])).trim(), 'via-jump');
  });
});

describe("the node's SSH port", () => {
  it('still serves plain SSH to OpenSSH without a proxy (break-glass ssh -p)', async () => {
    const [host, port] = cluster.nodeAddr.split(':') as [string, string];
    const r = await run('ssh', ['-F', directCfg, '-p', port, `root@${host}`, 'echo break-glass']);
    assert.equal(ok(r).trim(), 'break-glass');
  });

  it("opens its TLS door to a proxy's certificate", async () => {
    const proxy = await joinHost('proxy', 'door-proxy', ['127.0.0.1']);
    const r = await tlsToNodePort(proxy.identity);
    assert.match(r.data, /^SSH-2\.0-/);
  });

  it("refuses TLS with a user's certificate, a node's certificate or none, before any SSH", async () => {
    const read = (file: string) => readFileSync(join(bob.keys, file), 'utf8');
    const user = { keyPem: read('tls.key'), certPem: read('tls.crt') };
    const node = (await joinHost('node', 'door-node', ['127.0.0.1'])).identity;
    for (const [who, identity] of [
      ['user', user],
      ['node', node],
      ['no certificate', undefined],
    ] as const) {
      const r = await tlsToNodePort(identity);
      assert.equal(r.data, '', `${who}: the node answered ${JSON.stringify(r.data)}`);
      assert.ok(r.closed, `${who}: the connection stayed open`);
    }
    await delay(100);
    assert.match(cluster.log, /refused a TLS connection to the SSH port: only proxies may use it/);
  });
});

describe('what a node may say about itself', () => {
  /** The message of the error `call` fails with. */
  async function refusal(call: Promise<unknown>): Promise<string> {
    const err = await call.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    assert.ok(err, 'expected a refusal');
    return err.message;
  }

  it('refuses a heartbeat that renames the node into another host name', async () => {
    const host = await joinHost('node', 'renamer', ['127.0.0.1']);
    await heartbeat(host, { hostname: 'renamer', addr: '127.0.0.1:1' });
    assert.match(
      await refusal(heartbeat(host, { hostname: target.node, addr: '127.0.0.1:1' })),
      new RegExp(`a node may only heartbeat the host name it joined with, not "${target.node}"`),
    );
    const longName = `renamer.${cluster.clusterName}`;
    const renamed = heartbeat(host, { hostname: longName, addr: '127.0.0.1:1' });
    assert.match(await refusal(renamed), /only heartbeat the host name/);
  });

  it("refuses a heartbeat for another node's id", async () => {
    const host = await joinHost('node', 'spoofer', ['127.0.0.1']);
    const identityFile = join(cluster.dataDir, 'node', 'identity.json');
    const homeNode = JSON.parse(readFileSync(identityFile, 'utf8')) as { hostId: string };
    const node = nodeResource(homeNode.hostId, { hostname: 'spoofer', addr: '127.0.0.1:1' });
    const call = cluster.client(host.identity).heartbeat({ resource: { json: JSON.stringify(node) }, remove: false });
    assert.match(await refusal(call), /a host may only heartbeat itself/);
  });

  it('refuses a join whose addresses hold a wildcard', async () => {
    for (const addr of ['*', `*.${cluster.clusterName}`, '*.example.com']) {
      assert.match(await refusal(joinHost('node', 'wild', ['127.0.0.1', addr])), /wildcard names are not issued/, addr);
    }
  });

  it('refuses a join under the host name, or with an address, of a node heartbeating now', async () => {
    const taken = new RegExp(`host name "${target.node}" is held by a node heartbeating now`);
    assert.match(await refusal(joinHost('node', target.node, ['127.0.0.1'])), taken);
    const squat = (addresses: string[]) => refusal(joinHost('node', 'squatter', addresses));
    assert.match(await squat(['127.0.0.1', target.node]), /is the name of a node heartbeating now/);
    assert.match(await squat([`${target.node}.${cluster.clusterName}`]), /are the cluster's own/);
  });
});
