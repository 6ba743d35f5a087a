// Host identities under attack, end to end: really joined agents whose identity files are used as a thief would
// use them (the Auth API with the host's own certificate), locks by host name, an admin removing a node, users
// reading nodes their roles hide, and nodes writing audit events that are not theirs to write.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AccessDenied, BadParameter, NotFound } from '../../src/api/errors.ts';
import type { TLSIdentity } from '../../src/api/client.ts';
import {
  cleanup,
  delay,
  makeTempDir,
  poll,
  readTLSIdentity,
  startAgent,
  type Cluster,
  type NodeAgent,
} from '../harness.ts';
import { killTerminals, Terminal } from '../terminal.ts';
import { addUser, type TestUser } from '../users.ts';
import { ok, startTarget, type Target } from './fixture.ts';

let target: Target;
let cluster: Cluster;
let work: string;
let bob: TestUser;

/** The TLS identity a joined host keeps in its data dir: what a thief takes from a compromised host. */
function hostIdentity(dataDir: string): TLSIdentity & { hostId: string } {
  const id = JSON.parse(readFileSync(join(dataDir, 'node', 'identity.json'), 'utf8')) as {
    hostId: string;
    tlsKey: string;
    tlsCert: string;
    tlsCAs: string[];
  };
  return { hostId: id.hostId, keyPem: id.tlsKey, certPem: id.tlsCert, caPems: id.tlsCAs };
}
const agentIdentity = (agent: NodeAgent) => hostIdentity(join(agent.root, 'data'));

function heartbeatAs(identity: TLSIdentity & { hostId: string }, hostname: string) {
  const spec = { hostname, addr: '', tunnel: true, version: 'x' };
  const node = { kind: 'node', version: 'v1', metadata: { name: identity.hostId }, spec };
  return cluster.client(identity).heartbeat({ resource: { json: JSON.stringify(node) }, remove: false });
}

async function events(type: string): Promise<Array<Record<string, unknown>>> {
  const out = ok(await cluster.wctl(['events', '--format', 'json', '--type', type, '--limit', '1000']));
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The host names of the listed nodes, as wctl prints them in YAML. */
const nodeNames = async () => ok(await cluster.wctl(['get', 'nodes', '--format', 'yaml']));

before(async () => {
  work = makeTempDir('ward-sec-hosts-');
  target = await startTarget();
  cluster = target.cluster;
  bob = await addUser(cluster, work, 'bob', 'access');
});

after(async () => {
  killTerminals();
  await cleanup();
});

describe('host locks and revocation', { concurrency: 1 }, () => {
  it('locks a node named at lock time by its host id: heartbeating under another name does not evade it', async () => {
    const evil = await startAgent(cluster, 'evil1', ['--tunnel']);
    const id = agentIdentity(evil);
    await poll('evil1 to be listed', async () => (await nodeNames()).includes('evil1') || undefined, 20_000, 200);

    const locked = ok(await cluster.wctl(['lock', '--node', 'evil1', '--message', 'stolen']));
    const t0 = Date.now();
    assert.match(locked, new RegExp(`Locked node "evil1" \\(host id ${id.hostId}\\)`));
    const locks = JSON.parse(ok(await cluster.wctl(['locks', 'ls', '--format', 'json'])));
    const [lock] = locks as Array<{ spec: { target: { node?: string } } }>;
    assert.equal(lock?.spec.target.node, id.hostId, 'the lock holds the host id, not the name');

    // The thief heartbeats the same host id under a new name, then tries what a node may do.
    const refused = (e: unknown) => e instanceof AccessDenied && /node "evil1" is locked: stolen/.test(e.message);
    await assert.rejects(heartbeatAs(id, 'evil1b'), refused);
    const client = cluster.client(id);
    await assert.rejects(client.getResource({ kind: 'user', name: target.user }), refused);
    await assert.rejects(client.listResources({ kind: 'lock' }), refused);
    const exec = JSON.stringify({ event: 'exec', user: 'alice', command: 'true' });
    await assert.rejects(client.emitAuditEvents({ events: [exec] }), refused);
    assert.ok(Date.now() - t0 < 5_000, 'refused within seconds of the lock');
    assert.doesNotMatch(await nodeNames(), /evil1b/);
    // Users are refused it under either name.
    const bySsh = await cluster.wsh(bob.wshHome, ['ssh', 'root@evil1', 'true']);
    assert.notEqual(bySsh.code, 0);
    assert.match(bySsh.stderr, /node "evil1" is locked: stolen/);
    assert.notEqual((await cluster.wsh(bob.wshHome, ['ssh', 'root@evil1b', 'true'])).code, 0);
    await evil.stop();
  });

  it('refuses to lock a name that no node has, in one line', async () => {
    const r = await cluster.wctl(['lock', '--node', 'no-such-node']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no node is named "no-such-node": lock a host by its id/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(ok(await cluster.wctl(['locks', 'ls'])), /no-such-node/);
  });

  it('revokes a node removed with wctl rm: its session and tunnel end, its identity is refused for good', async () => {
    const victim = await startAgent(cluster, 'victim', ['--tunnel']);
    const id = agentIdentity(victim);
    const reach = () => cluster.wsh(bob.wshHome, ['ssh', 'root@victim', 'true']);
    await poll('victim to be reachable', async () => (await reach()).code === 0 || undefined, 20_000, 200);
    const shell = new Terminal('ssh', ['-F', bob.cfg, '-tt', 'root@victim'], { WSH_HOME: bob.wshHome });
    shell.type('echo shell-up-$((40+2))\n');
    await shell.waitFor(/shell-up-42/);

    const t0 = Date.now();
    const removed = ok(await cluster.wctl(['rm', `node/${id.hostId}`]));
    assert.match(removed, new RegExp(`host identity is revoked by lock revoked-${id.hostId}`));
    const ended = await Promise.race([shell.exited.then(() => true), delay(10_000).then(() => false)]);
    const took = Date.now() - t0;
    assert.ok(ended && took < 5_000, `the session ended ${ended ? `${took} ms after the removal` : 'not at all'}`);
    // The proxy closed the host's tunnel itself (a node that would not end its own sessions is cut off too)...
    const closedLine = new RegExp(`"hostId":"${id.hostId}"[^\\n]*tunnel closed: host refused`);
    await poll('the proxy to close the tunnel', async () => closedLine.test(cluster.log) || undefined, 5_000, 100);
    // ...and refuses the agent's next tunnel at accept.
    const refusedLine = new RegExp(`host ${id.hostId} refused: node \\\\"victim\\\\" is locked`);
    await poll("the agent's new tunnel refused", async () => refusedLine.test(cluster.log) || undefined, 20_000, 200);

    // The identity cannot list the node again, nor call anything else.
    await assert.rejects(heartbeatAs(id, 'victim'), (e) => e instanceof AccessDenied && /is revoked/.test(e.message));
    await assert.rejects(cluster.client(id).listResources({ kind: 'node' }), AccessDenied);
    assert.doesNotMatch(await nodeNames(), /victim/);
    assert.notEqual((await reach()).code, 0);
    const audited = await events('lock.created');
    assert.ok(audited.some((e) => e.name === `revoked-${id.hostId}` && e.user === 'service:admin'));

    // Unlocking is how an admin lets it back.
    ok(await cluster.wctl(['unlock', `revoked-${id.hostId}`]));
    await heartbeatAs(id, 'victim');
    await victim.stop();
  });

  it('refuses removing a node that is not listed, and locks nothing', async () => {
    const r = await cluster.wctl(['rm', 'node/00000000-0000-4000-8000-000000000000']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not found/);
    assert.doesNotMatch(ok(await cluster.wctl(['locks', 'ls'])), /00000000-0000-4000-8000-000000000000/);
  });
});

/** A plain HTTPS call to the proxy's web API, trusting the cluster CA. */
interface WebAnswer {
  status: number;
  body: Record<string, unknown>;
  cookie?: string;
}
function web(method: string, path: string, opts: { cookie?: string; body?: unknown } = {}): Promise<WebAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.cookie) headers.cookie = opts.cookie;
    const url = new URL(path, `https://${cluster.proxyAddr}`);
    const tls = { ca: cluster.adminIdentity().caPems, servername: 'localhost' };
    const req = https.request(url, { method, headers, ...tls }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => (text += s));
      res.on('end', () => {
        const cookie = res.headers['set-cookie']?.[0]?.split(';')[0];
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {}, cookie });
      });
    });
    req.on('error', reject);
    req.end(opts.body === undefined ? undefined : JSON.stringify(opts.body));
  });
}

describe('what a user may see of nodes', { concurrency: 1 }, () => {
  const node = (name: string, env: string) => ({
    kind: 'node',
    version: 'v1',
    metadata: { name, labels: { env } },
    spec: { hostname: name, addr: '', tunnel: true, version: 'x' },
  });
  const upsert = (r: unknown) =>
    cluster.adminClient().upsertResource({ resource: { json: JSON.stringify(r) }, overwrite: true });

  it('hides a node the roles do not match from GetResource, Watch and the web API, as from listings', async () => {
    // A user whose role reads nodes but matches only env=lab.
    const role = [
      'kind: role',
      'version: v1',
      'metadata: {name: lab-only}',
      'spec:',
      '  allow:',
      '    logins: [root]',
      '    node_labels: {env: lab}',
      '    rules: [{resources: [node], verbs: [list, read]}]',
      '',
    ].join('\n');
    ok(await cluster.wctl(['create', '-f', '-'], { stdin: role }));
    const add = ['users', 'add', 'blind', '--roles', 'lab-only', '--logins', 'root', '--password-stdin'];
    ok(await cluster.wctl(add, { stdin: `${target.password}\n` }));
    ok(await cluster.wctl(['auth', 'sign', '--user', 'blind', '--format', 'tls', '--out', join(work, 'blind')]));
    const blind = cluster.client(readTLSIdentity(join(work, 'blind')));
    await upsert(node('hidden-prod', 'prod'));
    await upsert(node('seen-lab', 'lab'));

    const listed = (await blind.listResources({ kind: 'node' })).resources.map((r) => JSON.parse(r.json).metadata.name);
    assert.deepEqual(listed, ['seen-lab']);
    const get = (name: string) => blind.getResource({ kind: 'node', name });
    const notFound = (name: string) => (e: unknown) =>
      e instanceof NotFound && e.message === `node "${name}" not found`;
    await assert.rejects(get('hidden-prod'), notFound('hidden-prod'));
    assert.equal(JSON.parse((await get('seen-lab')).json).metadata.name, 'seen-lab');
    // A missing node gets the very same answer as a hidden one.
    await assert.rejects(get('no-such'), notFound('no-such'));

    // Watch: changes to hidden nodes never arrive; a visible node that becomes hidden arrives as deleted.
    const abort = new AbortController();
    const seen: string[] = [];
    const watching = (async () => {
      try {
        for await (const e of blind.watch({ kinds: ['node'] }, { signal: abort.signal })) {
          if (e.type === 'init') {
            await upsert(node('hidden-prod', 'prod'));
            await upsert(node('other-prod', 'prod'));
            await upsert(node('seen-lab', 'lab'));
            await upsert(node('seen-lab', 'prod'));
            await upsert(node('marker-lab', 'lab'));
            continue;
          }
          if (/^(hidden|other|seen|marker)-/.test(e.name)) seen.push(`${e.type}:${e.name}`);
          if (e.name === 'marker-lab') abort.abort();
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
    })();
    const giveUp = delay(15_000).then(() => Promise.reject(new Error(`watch saw only ${seen.join(', ')}`)));
    await Promise.race([watching, giveUp]);
    assert.deepEqual(seen, ['put:seen-lab', 'delete:seen-lab', 'put:marker-lab']);

    // The web API's node list reads through the same check, with the user's own identity.
    const signIn = await web('POST', '/webapi/sessions/web', { body: { user: 'blind', password: target.password } });
    assert.equal(signIn.status, 200, JSON.stringify(signIn.body));
    const nodes = await web('GET', '/webapi/nodes', { cookie: signIn.cookie });
    assert.equal(nodes.status, 200);
    assert.deepEqual(
      (nodes.body.nodes as Array<{ hostname: string }>).map((n) => n.hostname),
      ['marker-lab'],
    );
  });
});

describe('audit events from nodes', () => {
  it("stamps a node's event with the node's own host id as emitter, whatever it wrote", async () => {
    const home = hostIdentity(cluster.dataDir);
    const forged = {
      event: 'session.start',
      user: 'alice',
      login: 'root',
      sid: 'forged-1',
      server_id: 'someone-else',
      emitter: 'auth',
      emitter_role: 'auth',
    };
    await cluster.client(home).emitAuditEvents({ events: [JSON.stringify(forged)] });
    const stored = (await events('session.start')).find((e) => e.sid === 'forged-1');
    assert.ok(stored, 'stored');
    assert.equal(stored.emitter, home.hostId);
    assert.equal(stored.emitter_role, 'node');
    assert.equal(stored.server_id, home.hostId);
  });

  it('refuses events only the auth server writes, from a really joined node', async () => {
    const client = cluster.client(hostIdentity(cluster.dataDir));
    const authOnly = [
      'user.login',
      'user.locked',
      'node.join',
      'lock.created',
      'cert.create',
      'role.created',
      'user.create',
      'ca.rotated',
    ];
    for (const event of authOnly) {
      const forged = JSON.stringify({ event, user: 'alice', success: true, sid: `forged-${event}` });
      const refused = (e: unknown) =>
        e instanceof BadParameter && e.message.includes(`a node may not report "${event}"`);
      await assert.rejects(client.emitAuditEvents({ events: [forged] }), refused);
    }
    const logins = await events('user.login');
    assert.ok(!logins.some((e) => String(e.sid ?? '').startsWith('forged-')), 'nothing forged was stored');
  });
});
