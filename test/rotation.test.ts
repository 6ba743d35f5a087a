// End to end: rotating the user CA with `wctl auth rotate`, checked with plain OpenSSH through the proxy to a
// node. Certificates signed before the rotation keep working until its last step and stop working after it;
// certificates issued from update_clients on are signed by the new key (ssh-keygen -L) and keep working; a
// rollback leaves the old key alone; a skipped phase, a CA that does not rotate and a user without the right
// are refused.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYAML } from 'yaml';
import { cleanup, makeTempDir, poll, run, startCluster, type Cluster } from './harness.ts';
import { AccessDenied } from '../src/api/errors.ts';
import { addUser, ok, sshAs, wshLogin, writeSSHConfig, type TestUser } from './users.ts';

let main: Cluster;
let work: string;
let node: string;

const canSSH = async (u: TestUser) => (await sshAs(u, [`root@${node}`, 'echo rotated-ok'])).stdout.includes('rotated-ok');

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

async function rotate(args: string[]): Promise<string> {
  return ok(await main.wctl(['auth', 'rotate', '--type', 'user', ...args]));
}

async function phase(): Promise<string> {
  const ca = parseYAML(ok(await main.wctl(['get', 'cert_authority', 'user', '--format', 'yaml']))) as { spec: { rotation: { phase: string } } };
  return ca.spec.rotation.phase;
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
  it('keeps old certificates working until the last phase, signs new ones with the new key, then drops the old key', async () => {
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
    await poll('the node to stop trusting the old key', async () => ((await canSSH(old)) ? undefined : true), 10_000, 200);
    assert.ok(await canSSH(fresh), 'standby: the new certificate works');
    const refused = await sshAs(old, [`root@${node}`, 'true']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Permission denied/);
    const exported = ok(await main.wctl(['auth', 'export', '--type', 'user']));
    assert.equal(exported.trim().split('\n').length, 1, `one key left in the export: ${exported}`);
    const events = ok(await main.wctl(['events', '--format', 'json', '--type', 'ca.rotated', '--limit', '100']));
    assert.deepEqual(
      events.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { to: string }).to).reverse(), // newest first
      ['init', 'update_clients', 'update_servers', 'standby'],
    );
  });

  it('rolls back to the old key from update_servers, and refuses a skipped phase or a rollback with nothing to undo', async () => {
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
    await poll('the node to drop the abandoned key', async () => ((await canSSH(during)) ? undefined : true), 10_000, 200);
    assert.ok(await canSSH(bob), 'certificates from the old key work throughout');
  });

  it('refuses CAs that do not rotate yet, and users without the right to update CAs', async () => {
    for (const type of ['host', 'tls', 'db']) {
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
    assert.equal(await phase(), 'standby');
  });
});
