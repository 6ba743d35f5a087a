// What a user may do on a node beyond the login they authenticated with, attacked through the proxy with real
// OpenSSH: a remote forward asking for every address listens on loopback only unless a role allows more; joining
// a live session takes the session's login on the node; a certificate's force-command is not escaped by asking
// to join a session; and one user cannot take every stream of a node's tunnel.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { parse as parseYAML } from 'yaml';
import type { SessionTracker } from '../../src/api/types.ts';
import { listeningOn } from '../fixtures/listening.ts';
import { BIN, cleanup, makeTempDir, poll, run, startAgent, type Cluster } from '../harness.ts';
import { Terminal, killTerminals } from '../terminal.ts';
import { addUser, ok, sshAs, writeDirectSSHConfig, type TestUser } from '../users.ts';
import { resignSSHCert } from './forge.ts';
import { startTarget, type Target } from './fixture.ts';

let target: Target;
let cluster: Cluster;
let work: string;
let node: string;
const users: Record<string, TestUser> = {};
const forwards = new Set<ChildProcess>();

const role = (name: string, spec: string) => `kind: role\nversion: v1\nmetadata: {name: ${name}}\nspec:\n${spec}`;
const ROLES = [
  // Together: may watch and type into others' sessions, and log in as nobody, not as root.
  role('joiner', '  allow:\n    rules: [{resources: [session_tracker], verbs: [list, read, update]}]\n'),
  role('nobody-only', "  allow:\n    logins: [nobody]\n    node_labels: {'*': '*'}\n"),
  role('gateway', '  options: {port_forwarding: true, port_forwarding_gateway: true}\n'),
];

before(async () => {
  work = makeTempDir('ward-sec-node-');
  target = await startTarget();
  cluster = target.cluster;
  node = target.node;
  for (const yaml of ROLES) {
    const resource = { json: JSON.stringify(parseYAML(yaml)) };
    await cluster.adminClient().upsertResource({ resource, overwrite: false });
  }
  const add = async (name: string, roles: string) => (users[name] = await addUser(cluster, work, name, roles));
  await Promise.all([
    add('olive', 'access'),
    add('bob', 'joiner,nobody-only'),
    add('carol', 'access,joiner'),
    add('gwen', 'access,gateway'),
    add('mallory', 'access'),
  ]);
});

after(async () => {
  killTerminals();
  for (const child of forwards) child.kill('SIGKILL');
  await cleanup();
});

async function liveSessions(u: TestUser): Promise<SessionTracker[]> {
  return JSON.parse(ok(await cluster.wsh(u.wshHome, ['sessions', 'ls', '--format', 'json']))) as SessionTracker[];
}

/** olive's interactive root session on the node, running; its id. */
async function rootSession(): Promise<{ t: Terminal; sid: string }> {
  const t = new Terminal('ssh', ['-F', users.olive!.cfg, '-tt', `root@${node}`], { WSH_HOME: users.olive!.wshHome });
  t.type('echo owner-$((6*7))\n');
  await t.waitFor(/owner-42/);
  const live = await poll('the live session', async () =>
    (await liveSessions(users.olive!)).find((s) => s.spec.user === 'olive'),
  );
  return { t, sid: live.metadata.name };
}

const participants = async (sid: string) =>
  (await liveSessions(users.olive!)).find((s) => s.metadata.name === sid)?.spec.participants.map((p) => p.user) ?? [];

/** `ssh -tt` as `u` asking the node to put this session channel into live session `sid`. */
const joinArgs = (sid: string, mode: 'peer' | 'observer') => [
  '-tt',
  '-o',
  `SetEnv=WARD_JOIN_SESSION=${sid} WARD_JOIN_MODE=${mode}`,
];

describe('privileges on a node beyond the login', () => {
  it('listens on loopback only for ssh -R 0.0.0.0:0, and where asked for a user whose role allows it', async () => {
    for (const [name, want] of [
      ['olive', ['127.0.0.1', '::1']],
      ['gwen', ['0.0.0.0']],
    ] as const) {
      const u = users[name]!;
      // LogLevel INFO before -F (the first value wins): ssh says which port the node allocated.
      const args = ['-o', 'LogLevel=INFO', '-F', u.cfg, '-N', '-o', 'ExitOnForwardFailure=yes'];
      args.push('-R', '0.0.0.0:0:127.0.0.1:9');
      const child = spawn('ssh', [...args, `root@${node}`], { env: { ...process.env, WSH_HOME: u.wshHome } });
      forwards.add(child);
      let stderr = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stderr.on('data', (d: Buffer) => {
          const m = /Allocated port (\d+)/.exec((stderr += d.toString()));
          if (m) resolve(Number(m[1]));
        });
        child.once('close', (code) => reject(new Error(`ssh -R exited ${code}: ${stderr}`)));
      });
      try {
        assert.deepEqual(listeningOn(port), want, `${name}: ssh -R 0.0.0.0:0:…`);
      } finally {
        child.kill();
      }
    }
  });

  it('keeps out of a root session one who may join sessions but not log in as root; one who may joins', async () => {
    const { t, sid } = await rootSession();
    // bob holds the session_tracker rule, and only the login nobody: he asks the node, session id in hand.
    for (const mode of ['peer', 'observer'] as const) {
      const refused = await sshAs(users.bob!, [...joinArgs(sid, mode), `nobody@${node}`], {
        stdin: 'echo bob-got-in\n',
      });
      assert.equal(refused.code, 1, `${mode}: ${refused.stdout}${refused.stderr}`);
      assert.match(refused.stdout + refused.stderr, /no live session .* that you may join here/);
    }
    assert.deepEqual(await participants(sid), ['olive']);
    assert.doesNotMatch(t.output.toString(), /bob-got-in/);

    // carol may log in as root and holds the rule: she joins and types into it.
    const carol = users.carol!;
    const joinAs = ['-F', carol.cfg, ...joinArgs(sid, 'peer'), `root@${node}`];
    const peer = new Terminal('ssh', joinAs, { WSH_HOME: carol.wshHome });
    await poll('carol to join', async () => ((await participants(sid)).length === 2 ? true : undefined));
    peer.type('echo carol-typed-$((5*5))\n');
    await t.waitFor(/carol-typed-25/);
    assert.equal(await t.exit(), 0);
    assert.equal(await peer.exited, 0);

    const denied = await poll('the refusals in the audit log', async () => {
      const out = ok(await cluster.wctl(['events', '--format', 'json', '--type', 'access.denied', '--limit', '1000']));
      const hits = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((e) => e.user === 'bob' && e.action === 'session.join' && e.target_sid === sid);
      return hits.length === 2 ? hits : undefined;
    });
    assert.deepEqual(denied.map((e) => e.mode).sort(), ['observer', 'peer']);
  });

  it("runs a certificate's force-command when it asks to join a session, its owner's or another's", async () => {
    const { t, sid } = await rootSession();
    for (const name of ['carol', 'olive']) {
      const u = users[name]!;
      // The user's own key with a certificate from the cluster's CA that carries force-command.
      const dir = join(work, `forced-${name}`);
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(u.keys, 'id'), join(dir, 'id'));
      const cert = await resignSSHCert(cluster, readFileSync(join(u.keys, 'id-cert.pub'), 'utf8'), (f) => ({
        ...f,
        criticalOptions: { 'force-command': 'echo forced-$((4+4))' },
      }));
      writeFileSync(join(dir, 'id-cert.pub'), `${cert}\n`);
      const knownHosts = join(u.keys, 'known_hosts');
      const cfg = writeDirectSSHConfig(join(dir, 'ssh_config'), join(dir, 'id'), knownHosts, join(BIN, 'wsh'));
      const r = await run('ssh', ['-F', cfg, ...joinArgs(sid, 'peer'), `root@${node}`], {
        env: { WSH_HOME: u.wshHome },
        stdin: `echo ${name}-escaped\n`,
      });
      assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /forced-8/, name);
      assert.deepEqual(await participants(sid), ['olive'], name);
      assert.doesNotMatch(t.output.toString(), new RegExp(`${name}-escaped`));
    }
    assert.equal(await t.exit(), 0);
  });

  it('refuses one user past 256 streams of a node tunnel in one line; another user still gets through', async () => {
    await startAgent(cluster, 'tun', ['--tunnel']);
    const reached = async () => ((await sshAs(users.carol!, ['root@tun', 'true'])).code === 0 ? true : undefined);
    await poll('the proxy to route to tun', reached, 20_000, 200);
    const [host, port] = cluster.proxyAddr.split(':') as [string, string];
    /** The SSH-in-TLS route of wsh proxy ssh: the proxy's one-line answer, and the socket (SSH after OK). */
    const dial = (u: TestUser) =>
      new Promise<{ answer: string; socket: tls.TLSSocket }>((resolve, reject) => {
        const socket = tls.connect({
          host,
          port: Number(port),
          ALPNProtocols: ['ward-proxy-ssh'],
          checkServerIdentity: () => undefined,
          key: readFileSync(join(u.keys, 'tls.key')),
          cert: readFileSync(join(u.keys, 'tls.crt')),
          ca: readFileSync(join(u.keys, 'cas.pem')),
        });
        socket.on('error', reject);
        socket.once('secureConnect', () => socket.write('tun:22\n'));
        let head = '';
        socket.on('data', function onData(d: Buffer) {
          head += d.toString('latin1');
          if (!head.includes('\n')) return;
          socket.off('data', onData);
          socket.pause();
          resolve({ answer: head.slice(0, head.indexOf('\n')), socket });
        });
      });
    const held: tls.TLSSocket[] = [];
    try {
      // mallory's connections never start SSH: each holds a stream of tun's tunnel until the node drops it.
      for (let i = 0; i < 256; i += 32) {
        const batch = await Promise.all(Array.from({ length: 32 }, () => dial(users.mallory!)));
        held.push(...batch.map((b) => b.socket));
        assert.deepEqual([...new Set(batch.map((b) => b.answer))], ['OK']);
      }
      const refused = await dial(users.mallory!);
      held.push(refused.socket);
      assert.match(refused.answer, /^ERR you have 256 connections open to node \S+, the most one user may have/);
      const other = await dial(users.carol!);
      held.push(other.socket);
      assert.equal(other.answer, 'OK');
      assert.equal(ok(await sshAs(users.carol!, ['root@tun', 'echo carol-still-in'])).trim(), 'carol-still-in');
      // A connection that ends gives its place back.
      held.shift()!.destroy();
      await poll('mallory to get a place back', async () => {
        const again = await dial(users.mallory!);
        held.push(again.socket);
        return again.answer === 'OK' ? true : undefined;
      });
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
