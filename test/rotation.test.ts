// End to end: rotating the user and host CAs with `wctl auth rotate`, checked with plain OpenSSH through the
// proxy to a node (ProxyCommand and `ssh -J`). User CA: certificates signed before the rotation keep working until
// its last step and stop working after it; certificates issued from update_clients on are signed by the new key
// (ssh-keygen -L). Host CA: the node and the proxy move to the new key in update_servers (and back on rollback),
// and keep the renewed certificate; clients that learned the new key at login keep connecting, clients that did
// not stop trusting them. A skipped phase, a CA that does not rotate and a user without the right are refused.
// TLS CA: a tunnelled and a listening node, the proxy and the auth server trust both keys from init and move their
// certificates in update_servers, without a restart; users who log in again keep working, logins from before are
// told to log in again, and at standby a node identity and a login copied before the rotation are refused (an open
// connection too). A rollback from update_servers moves every host back to the old key before the new one is dropped.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYAML } from 'yaml';
import {
  cleanup,
  delay,
  makeTempDir,
  poll,
  run,
  startAgent,
  startCluster,
  type Cluster,
  type NodeAgent,
} from './harness.ts';
import { AccessDenied } from '../src/api/errors.ts';
import { issuerOf } from '../src/api/rotation.ts';
import { fetchProxyCA } from '../src/api/trust.ts';
import { ALPN_AUTH, createAuthClient, type TLSIdentity } from '../src/api/client.ts';
import { addUser, ok, sshAs, wshLogin, writeDirectSSHConfig, writeSSHConfig, type TestUser } from './users.ts';

let main: Cluster;
let work: string;
let node: string;

const canSSH = async (u: TestUser) =>
  (await sshAs(u, [`root@${node}`, 'echo rotated-ok'])).stdout.includes('rotated-ok');

/** The fingerprint of the CA that signed a certificate, as `ssh-keygen -L` reads it. */
async function signingCA(u: TestUser): Promise<string> {
  const text = ok(await run('ssh-keygen', ['-L', '-f', join(u.keys, 'id-cert.pub')]));
  const fp = /Signing CA: \S+ (SHA256:\S+)/.exec(text)?.[1];
  assert.ok(fp, text);
  return fp;
}

/** The same user logged in again in a new WSH_HOME: a second laptop, with certificates issued now. */
async function loginAgain(u: TestUser, tag: string): Promise<TestUser> {
  const wshHome = main.newWshHome();
  const keys = /Keys: (\S+)/.exec(ok(await wshLogin(main, { name: u.name, password: u.password, wshHome })))?.[1];
  assert.ok(keys);
  return { ...u, wshHome, keys, cfg: writeSSHConfig(join(work, `${u.name}-${tag}.ssh_config`), keys) };
}

async function rotate(args: string[], type = 'user'): Promise<string> {
  return ok(await main.wctl(['auth', 'rotate', '--type', type, ...args]));
}

async function phase(type = 'user'): Promise<string> {
  const ca = parseYAML(ok(await main.wctl(['get', 'cert_authority', type, '--format', 'yaml']))) as {
    spec: { rotation: { phase: string } };
  };
  return ca.spec.rotation.phase;
}

/** `ssh -J user@proxy root@node` with the user's keys and known_hosts, the proxy's SSH server as the jump host. */
async function canJump(u: TestUser): Promise<boolean> {
  const cfg = writeDirectSSHConfig(
    join(work, `${u.name}-${u.wshHome.split('/').pop()}.jump_config`),
    join(u.keys, 'id'),
    join(u.keys, 'known_hosts'),
  );
  const r = await run('ssh', ['-F', cfg, '-J', `${u.name}@${main.proxyAddr}`, `root@${node}`, 'echo jumped-ok']);
  return r.stdout.includes('jumped-ok');
}

/** The fingerprint of the CA that signed the home node's host certificate as it keeps it in its data dir. */
async function nodeCertSigner(): Promise<string> {
  const file = join(work, 'node-cert.pub');
  writeFileSync(file, JSON.parse(readFileSync(join(main.dataDir, 'node', 'identity.json'), 'utf8')).sshCert + '\n');
  return /Signing CA: \S+ (SHA256:\S+)/.exec(ok(await run('ssh-keygen', ['-L', '-f', file])))![1]!;
}

before(async () => {
  work = makeTempDir('ward-e2e-rotation-');
  main = await startCluster({ node: true });
  node = JSON.parse(readFileSync(join(main.dataDir, 'node', 'identity.json'), 'utf8')).hostname as string;
});

after(async () => {
  await cleanup();
});

describe('user CA rotation', () => {
  it(
    'keeps old certificates working until the last phase, ' + 'signs new ones with the new key, then drops the old key',
    async () => {
      const old = await addUser(main, work, 'alice', 'access');
      await poll('ssh before the rotation', async () => ((await canSSH(old)) ? true : undefined), 20_000, 200);
      const oldCA = await signingCA(old);

      assert.match(await rotate([]), /phase init;.*2 keys trusted/);
      assert.equal(await phase(), 'init');
      assert.match(ok(await main.wctl(['status'])), /^user CA +\S+ +init$/m, 'wctl status shows the phase');
      assert.ok(await canSSH(old), 'init: the old certificate still works');
      const duringInit = await loginAgain(old, 'init');
      assert.equal(await signingCA(duringInit), oldCA, 'init: new certificates are still signed by the old key');

      const out = await rotate([]);
      assert.match(out, /phase update_clients/);
      const fresh = await loginAgain(old, 'fresh');
      const newCA = await signingCA(fresh);
      assert.notEqual(newCA, oldCA, 'update_clients: new certificates come from the new key');
      assert.ok(out.includes(newCA), `wctl names the new signing key: ${out}`);
      await poll('the node to trust the new key', async () => ((await canSSH(fresh)) ? true : undefined), 10_000, 200);
      assert.ok(await canSSH(old), 'update_clients: the old certificate still works');

      assert.match(await rotate([]), /phase update_servers/);
      assert.ok((await canSSH(old)) && (await canSSH(fresh)), 'update_servers: both work');

      const done = await rotate([]);
      assert.match(done, /phase standby;.*1 key trusted/);
      assert.doesNotMatch(done, /Next:/);
      await poll(
        'the node to stop trusting the old key',
        async () => ((await canSSH(old)) ? undefined : true),
        10_000,
        200,
      );
      assert.ok(await canSSH(fresh), 'standby: the new certificate works');
      const refused = await sshAs(old, [`root@${node}`, 'true']);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /Permission denied/);
      const exported = ok(await main.wctl(['auth', 'export', '--type', 'user']));
      assert.equal(exported.trim().split('\n').length, 1, `one key left in the export: ${exported}`);
      const events = ok(await main.wctl(['events', '--format', 'json', '--type', 'ca.rotated', '--limit', '100']));
      assert.deepEqual(
        events
          .split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { to: string }).to)
          .reverse(), // newest first
        ['init', 'update_clients', 'update_servers', 'standby'],
      );
    },
  );

  it(
    'rolls back to the old key from update_servers, ' +
      'and refuses a skipped phase or a rollback with nothing to undo',
    async () => {
      const bob = await addUser(main, work, 'bob', 'access');
      const before = await signingCA(bob);
      const skipped = await main.wctl(['auth', 'rotate', '--type', 'user', '--phase', 'update_clients']);
      assert.notEqual(skipped.code, 0);
      assert.match(skipped.stderr, /in phase standby: the next phase is init/);
      const nothing = await main.wctl(['auth', 'rotate', '--type', 'user', '--rollback']);
      assert.notEqual(nothing.code, 0);
      assert.match(nothing.stderr, /not being rotated/);

      await rotate(['--phase', 'init']);
      await rotate([]);
      const during = await loginAgain(bob, 'during');
      assert.notEqual(await signingCA(during), before);
      await rotate([]);
      assert.match(await rotate(['--rollback']), /rolled back/);
      assert.equal(await phase(), 'standby');
      const after = await loginAgain(bob, 'after');
      assert.equal(await signingCA(after), before, 'new certificates come from the old key again');
      await poll(
        'the node to drop the abandoned key',
        async () => ((await canSSH(during)) ? undefined : true),
        10_000,
        200,
      );
      assert.ok(await canSSH(bob), 'certificates from the old key work throughout');
    },
  );

  it('refuses CAs that do not rotate yet, and users without the right to update CAs', async () => {
    for (const type of ['db']) {
      const r = await main.wctl(['auth', 'rotate', '--type', type]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`the ${type} CA cannot be rotated yet`));
    }
    // An editor, who may read CAs, is refused over the API with their own certificate, and nothing changes.
    const carol = await addUser(main, work, 'carol', 'editor');
    const read = (f: string) => readFileSync(join(carol.keys, f), 'utf8');
    const asCarol = main.client({ keyPem: read('tls.key'), certPem: read('tls.crt'), caPems: [read('cas.pem')] });
    await asCarol.getResource({ kind: 'cert_authority', name: 'user' }); // her certificate works for what she may do
    await assert.rejects(asCarol.rotateCertAuthority({ type: 'user', phase: 'init', rollback: false }), AccessDenied);
    // Host certificates are renewed by hosts only, never for a user's certificate.
    await assert.rejects(asCarol.renewHostCerts({ sshCert: read('id-cert.pub') }), AccessDenied);
    assert.equal(await phase(), 'standby');
  });
});

describe('host CA rotation', () => {
  it(
    'moves nodes and the proxy to the new key in update_servers; ' + 'clients that learned it keep connecting',
    async () => {
      const early = await addUser(main, work, 'dave', 'access'); // knows the current host CA only
      await poll('ssh before the rotation', async () => ((await canSSH(early)) ? true : undefined), 20_000, 200);
      assert.ok(await canJump(early), 'ssh -J through the proxy before the rotation');
      const before = await nodeCertSigner();

      assert.match(await rotate([], 'host'), /phase init;.*2 keys trusted/);
      const late = await loginAgain(early, 'host-late'); // learns both keys at login
      assert.equal(readFileSync(join(late.keys, 'known_hosts'), 'utf8').match(/@cert-authority/g)?.length, 2);

      const clients = await rotate([], 'host');
      assert.match(clients, /phase update_clients/);
      const newKey = /signing key (SHA256:[^\s,]+)/.exec(clients)![1]!;
      assert.ok((await canSSH(early)) && (await canSSH(late)), 'update_clients: hosts have not switched yet');
      assert.equal(await nodeCertSigner(), before);

      assert.match(await rotate([], 'host'), /phase update_servers/);
      await poll(
        'the node to take a certificate from the new key',
        async () => ((await nodeCertSigner()) === newKey ? true : undefined),
        10_000,
        200,
      );
      await poll(
        'clients that only know the old key to stop trusting the node',
        async () => ((await canSSH(early)) ? undefined : true),
        10_000,
        200,
      );
      const refused = await sshAs(early, [`root@${node}`, 'true']);
      assert.match(refused.stderr, /Host key verification failed|certificate/i);
      const viaWsh = await main.wsh(early.wshHome, ['ssh', `root@${node}`, 'true']);
      assert.equal(viaWsh.code, 255);
      assert.match(
        viaWsh.stderr,
        /host CA has a key this login does not know .*run `wsh login` again/,
        'wsh ssh says what to do',
      );
      assert.ok(await canSSH(late), 'update_servers: a client that knows both keys connects');
      await poll(
        'the proxy to present a certificate from the new key',
        async () => ((await canJump(early)) ? undefined : true),
        10_000,
        200,
      );
      assert.ok(
        await canJump(late),
        "ssh -J: the proxy's new host certificate is trusted by a client that knows both keys",
      );

      assert.match(await rotate([], 'host'), /phase standby;.*1 key trusted/);
      assert.ok((await canSSH(late)) && (await canJump(late)), 'standby: still trusted');
      const after = await loginAgain(early, 'host-after');
      assert.ok(await canSSH(after), 'a login after the rotation trusts the hosts');
      const unrelated = await main.wsh(after.wshHome, ['ssh', 'root@no-such-node', 'true']);
      assert.equal(unrelated.code, 255);
      assert.doesNotMatch(unrelated.stderr, /host CA/, 'no rotation hint for a login that knows the keys');
    },
  );

  it('moves hosts back to the old key when a rotation is rolled back from update_servers', async () => {
    const erin = await addUser(main, work, 'erin', 'access');
    const before = await nodeCertSigner();
    await rotate(['--phase', 'init'], 'host');
    await rotate([], 'host');
    await rotate([], 'host');
    await poll(
      'the node to switch to the new key',
      async () => ((await nodeCertSigner()) !== before ? true : undefined),
      10_000,
      200,
    );
    assert.equal(await canSSH(erin), false, 'erin knows only the old key');
    assert.match(await rotate(['--rollback'], 'host'), /rolled back/);
    assert.equal(await phase('host'), 'standby');
    await poll(
      'the node to go back to the old key',
      async () => ((await nodeCertSigner()) === before ? true : undefined),
      10_000,
      200,
    );
    await poll('erin to reach the node again', async () => ((await canSSH(erin)) ? true : undefined), 10_000, 200);
    await poll(
      'erin to jump through the proxy again',
      async () => ((await canJump(erin)) ? true : undefined),
      10_000,
      200,
    );
  });
});

describe('TLS CA rotation', () => {
  let tunnelled: NodeAgent;
  let listening: NodeAgent;
  let oldCA: string;
  let newCA = '';
  const agents = () => [tunnelled, listening];
  type KeptIdentity = { tlsKey: string; tlsCert: string; tlsCAs: string[] };
  const keptIdentity = (agent: NodeAgent) =>
    JSON.parse(readFileSync(join(agent.root, 'data', 'node', 'identity.json'), 'utf8')) as KeptIdentity;
  const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g;
  const exportedTLS = async () => ok(await main.wctl(['auth', 'export', '--type', 'tls'])).match(PEM) ?? [];
  /** Which CA signed a certificate: 'old', 'new' or 'other'. */
  const signer = (certPem: string) =>
    issuerOf(certPem, [oldCA]) ? 'old' : newCA && issuerOf(certPem, [newCA]) ? 'new' : 'other';
  /** Which CA a server's certificate chain (as wsh login and a joining agent read it) ends with. */
  const presentedBy = async (addr: string, alpn?: string[]) =>
    signer((await fetchProxyCA(addr, 10_000, alpn)).caPem.replace(/\n?$/, '\n'));
  const reaches = async (u: TestUser, node: string) =>
    (await sshAs(u, [`root@${node}`, 'echo tls-rotated-ok'])).stdout.includes('tls-rotated-ok');
  const reachesAll = async (u: TestUser) => (await reaches(u, 'tlstun')) && (await reaches(u, 'tlsdirect'));
  /** The pin `wctl status` prints first: the CA the proxies present now, which an administrator hands to users. */
  const currentPin = async () => /CA pin: +(sha256:[0-9a-f]{64})/.exec(ok(await main.wctl(['status'])))![1]!;
  /** `wsh login` in a fresh WSH_HOME with the pin from `wctl status`, as a user told of the rotation would. */
  async function loginWithCurrentPin(u: TestUser, tag: string): Promise<TestUser> {
    const wshHome = main.newWshHome();
    const pin = await currentPin();
    const args = ['login', '--proxy', main.proxyAddr, '--user', u.name, '--password-stdin', '--ca-pin', pin];
    const keys = /Keys: (\S+)/.exec(ok(await main.wsh(wshHome, args, { stdin: `${u.password}\n` })))![1]!;
    return { ...u, wshHome, keys, cfg: writeSSHConfig(join(work, `${u.name}-${tag}.ssh_config`), keys) };
  }
  const userTLS = (u: TestUser): TLSIdentity => ({
    keyPem: readFileSync(join(u.keys, 'tls.key'), 'utf8'),
    certPem: readFileSync(join(u.keys, 'tls.crt'), 'utf8'),
    caPems: [readFileSync(join(u.keys, 'cas.pem'), 'utf8')],
  });
  const step = async (args: string[] = []) => ok(await main.wctl(['auth', 'rotate', '--type', 'tls', ...args]));
  const waitForHosts = (to: 'old' | 'new') =>
    poll(
      `both nodes and the proxy to present certificates from the ${to} TLS CA`,
      async () => {
        const nodes = agents().every((a) => signer(keptIdentity(a).tlsCert) === to);
        if (!nodes || (await presentedBy(main.proxyAddr)) !== to) return undefined;
        return (await presentedBy(main.authAddr, [ALPN_AUTH, 'h2'])) === to ? true : undefined;
      },
      15_000,
      250,
    );

  before(async () => {
    [tunnelled, listening] = await Promise.all([
      startAgent(main, 'tlstun', ['--tunnel']),
      startAgent(main, 'tlsdirect'),
    ]);
    [oldCA] = (await exportedTLS()) as [string];
  });

  it('moves every host to a new key; users who log in again keep working; a stolen identity dies', async () => {
    const early = await addUser(main, work, 'grace', 'access'); // logged in before the rotation
    await poll('ssh before the rotation', async () => (await reachesAll(early)) || undefined, 20_000, 250);
    // What a thief would copy: a node's identity and a user's login, from before the rotation.
    const stolenHost = keptIdentity(tunnelled);
    const stolen: TLSIdentity = { keyPem: stolenHost.tlsKey, certPem: stolenHost.tlsCert, caPems: stolenHost.tlsCAs };
    const earlyTLS = userTLS(early);
    assert.ok(await main.client(stolen).getResource({ kind: 'cert_authority', name: 'tls' }), 'works before');

    // init: a new key, trusted everywhere within seconds; the old key still signs.
    assert.match(await step(), /phase init;.*2 keys trusted/);
    assert.match(ok(await main.wctl(['status'])), /^tls CA +\S+ +init$/m, 'wctl status shows the phase');
    const both = await exportedTLS();
    assert.equal(both.length, 2, 'wctl auth export --type tls prints both CA certificates');
    newCA = both.find((pem) => pem !== oldCA)!;
    assert.match(ok(await main.wctl(['status'])), /CA pin: +sha256:\w+, sha256:\w+/, 'both CAs pinned');
    const trustBoth = async () => agents().every((a) => keptIdentity(a).tlsCAs.length === 2) || undefined;
    await poll('both nodes to trust both keys', trustBoth, 10_000, 200);
    assert.ok(await reachesAll(early), 'init: a login from before works');
    const inInit = await loginWithCurrentPin(early, 'tls-init'); // an old-key certificate, knowing both CAs
    assert.equal(signer(readFileSync(join(inInit.keys, 'tls.crt'), 'utf8')), 'old');

    // update_clients: the new key signs new certificates; servers keep theirs.
    assert.match(await step(), /phase update_clients/);
    const during = await loginWithCurrentPin(early, 'tls-during');
    const duringCert = readFileSync(join(during.keys, 'tls.crt'), 'utf8');
    assert.equal(signer(duringCert), 'new', 'a login now gets a certificate from the new key');
    assert.equal(signer(readFileSync(join(main.dataDir, 'admin', 'tls.crt'), 'utf8')), 'new', 'the local admin too');
    assert.ok(await reachesAll(during), 'update_clients: a certificate from the new key is trusted by the proxy');
    assert.ok(await reachesAll(early), 'update_clients: one from the old key too');
    assert.equal(await presentedBy(main.proxyAddr), 'old', 'servers still present the old key');

    // update_servers: nodes, the proxy and the auth server move to the new key, without a restart.
    assert.match(await step(), /phase update_servers/);
    await waitForHosts('new');
    await poll('ssh on new certificates', async () => (await reachesAll(during)) || undefined, 15_000, 250);
    assert.match(ok(await main.wctl(['status'])), /^tls CA +\S+ +update_servers$/m, 'wctl, with its renewed identity');
    // A login from before init trusts only the old CA: every command says what to do, in one line.
    const stale = /presents a certificate from a CA these credentials do not trust: .*log in again/;
    const staleLs = await main.wsh(early.wshHome, ['ls']);
    assert.notEqual(staleLs.code, 0);
    assert.match(staleLs.stderr, stale);
    assert.doesNotMatch(staleLs.stderr, /\n.*\n/, 'one line');
    assert.match((await main.wsh(early.wshHome, ['ssh', 'root@tlstun', 'true'])).stderr, stale);
    // Logging in again: a login made during the rotation learned the new CA's pin; one from before did not.
    const relogin = (u: TestUser) =>
      main.wsh(u.wshHome, ['login', '--proxy', main.proxyAddr, '--user', u.name, '--password-stdin'], {
        stdin: `${u.password}\n`,
      });
    ok(await relogin(during));
    const refusedLogin = await relogin(early);
    assert.notEqual(refusedLogin.code, 0);
    assert.match(refusedLogin.stderr, /intercepting.*TLS CA was rotated, log in with --ca-pin from `wctl status`/);

    // standby: the old key is dropped; what it signed no longer gets in, not even over a connection opened before.
    const heldIdentity = { ...stolen, caPems: [oldCA, newCA] };
    const held = createAuthClient({ addr: main.authAddr, identity: heldIdentity, idleTimeoutMs: 60_000 });
    await held.getResource({ kind: 'cert_authority', name: 'tls' });
    // A session through the proxy (SSH inside TLS) on a certificate from the old key, open across the last step.
    const session = sshAs(inInit, ['root@tlstun', 'echo session-up; sleep 40'], { timeoutMs: 60_000 });
    await delay(4_000); // ssh is through the proxy and running `sleep` (it prints session-up first)
    const sessionStart = Date.now();
    assert.match(await step(), /phase standby;.*1 key trusted/);
    const ended = await session;
    assert.ok(Date.now() - sessionStart < 30_000, 'the session on an old-key certificate was cut at standby');
    assert.match(ended.stdout, /session-up/);
    assert.equal(await reaches(inInit, 'tlstun'), false, 'and the certificate is refused from then on');
    await poll(
      'the connection opened with the stolen identity to be closed',
      async () => {
        try {
          await held.getResource({ kind: 'cert_authority', name: 'tls' });
          return undefined;
        } catch {
          return true;
        }
      },
      10_000,
      250,
    );
    assert.equal((await exportedTLS()).length, 1);
    await poll(
      'the stolen node identity to be refused',
      async () => {
        try {
          await main.client(stolen, main.authAddr).getResource({ kind: 'cert_authority', name: 'tls' });
          return undefined;
        } catch (err) {
          return err instanceof AccessDenied || /certificate/.test((err as Error).message) ? true : undefined;
        }
      },
      10_000,
      250,
    );
    const viaProxy = (id: TLSIdentity) => main.client(id, main.proxyAddr);
    await assert.rejects(viaProxy(stolen).renewHostCerts({ tlsPublicKey: '' }), /certificate/);
    await assert.rejects(viaProxy(earlyTLS).getResource({ kind: 'cert_authority', name: 'tls' }), /certificate/);
    assert.ok(await reachesAll(during), 'standby: a login during the rotation works');
    const after = await loginWithCurrentPin(early, 'tls-after');
    assert.ok(await reachesAll(after), 'a login after the rotation works');
    const events = ok(await main.wctl(['events', '--format', 'json', '--type', 'ca.rotated', '--limit', '100']));
    assert.deepEqual(
      events
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; to: string })
        .filter((e) => e.type === 'tls')
        .map((e) => e.to)
        .reverse(),
      ['init', 'update_clients', 'update_servers', 'standby'],
    );
    // A node restarted after the rotation comes back with the identity it keeps.
    await tunnelled.stop();
    await tunnelled.start(['--roles', 'node', '--tunnel', '--auth-server', main.proxyAddr]);
    await poll('ssh to the restarted node', async () => (await reaches(after, 'tlstun')) || undefined, 20_000, 250);
    oldCA = newCA;
    newCA = '';
  });

  it('moves hosts back to the old key on a rollback from update_servers, and drops the new key after', async () => {
    const password = `pw-${Math.random().toString(36).slice(2)}`;
    const add = ['users', 'add', 'heidi', '--roles', 'access', '--logins', 'root', '--password-stdin'];
    ok(await main.wctl(add, { stdin: `${password}\n` }));
    const before = await loginWithCurrentPin({ name: 'heidi', password, wshHome: '', keys: '', cfg: '' }, 'tls-before');
    await poll('ssh before the rotation', async () => (await reachesAll(before)) || undefined, 20_000, 250);
    await step(['--phase', 'init']);
    newCA = (await exportedTLS()).find((pem) => pem !== oldCA)!;
    await step();
    const during = await loginWithCurrentPin(before, 'tls-rollback');
    assert.equal(signer(readFileSync(join(during.keys, 'tls.crt'), 'utf8')), 'new');
    await step();
    await waitForHosts('new');

    const back = await step(['--rollback']);
    assert.match(back, /rolled back: phase rollback/);
    assert.match(back, /Next: wctl auth rotate --type tls +\(to standby/);
    assert.match(ok(await main.wctl(['status'])), /^tls CA +\S+ +rollback$/m);
    assert.equal((await exportedTLS()).length, 2, 'both keys trusted while hosts move back');
    await waitForHosts('old');
    assert.ok((await reachesAll(before)) && (await reachesAll(during)), 'rollback: certificates from both keys work');
    const refusedSkip = await main.wctl(['auth', 'rotate', '--type', 'tls', '--rollback']);
    assert.match(refusedSkip.stderr, /already rolling back: the next phase is standby/);

    assert.match(await step(), /phase standby;.*1 key trusted/);
    assert.deepEqual(await exportedTLS(), [oldCA], 'the old key alone again');
    assert.ok(await reachesAll(before), 'standby: a login from before the rotation still works');
    await poll(
      'a login from the abandoned key to be refused',
      async () => {
        const r = await main.wsh(during.wshHome, ['ls']);
        return r.code !== 0 ? r : undefined;
      },
      10_000,
      250,
    );
    newCA = '';
  });
});
