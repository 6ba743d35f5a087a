// Certificates that must not work, at the proxy, at the node and at the Auth API. Expired and foreign-CA
// certificates are covered in test/ssh.test.ts ('what is refused') and test/cluster.test.ts ('the Auth
// API refuses what a caller may not do'), as is a TLS certificate whose role was deleted; this file
// covers the rest: not yet valid, principals edited after signing, a host certificate used as a user's
// and a user's as a host's, a certificate for another cluster, and SSH certificates whose role was
// deleted since. Forged ones are signed with the cluster's own CA keys (forge.ts), so only the field
// under test is wrong.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import ssh2 from 'ssh2';
import { after, before, describe, it } from 'node:test';
import { AccessDenied } from '../../src/api/errors.ts';
import { cleanup, makeTempDir, poll, run, type Cluster, type RunResult } from '../harness.ts';
import { writeDirectSSHConfig } from '../users.ts';
import { RecordChannel } from '../../src/tunnel/records.ts';
import { reissueTLSCert, resignSSHCert } from './forge.ts';
import { ok, startTarget, type Target } from './fixture.ts';
import { assertSettled, readVitals, type Vitals } from './vitals.ts';

let target: Target;
let cluster: Cluster;
let work: string;
let baseline: Vitals;
let proxyPort: string;
let nodePort: string;
/** alice's real credentials from `wctl auth sign`: OpenSSH key + cert, and TLS key + cert. */
let sshKey: string;
let sshCertLine: string;
let tlsKey: string;
let tlsCert: string;
let caPems: string[];
let knownHosts: string;

before(async () => {
  work = makeTempDir('ward-sec-certs-');
  target = await startTarget();
  cluster = target.cluster;
  proxyPort = cluster.proxyAddr.split(':')[1]!;
  nodePort = cluster.nodeAddr.split(':')[1]!;
  sshKey = join(work, 'alice');
  ok(await cluster.wctl(['auth', 'sign', '--user', 'alice', '--format', 'openssh', '--out', sshKey]));
  sshCertLine = readFileSync(`${sshKey}-cert.pub`, 'utf8');
  ok(await cluster.wctl(['auth', 'sign', '--user', 'alice', '--format', 'tls', '--out', join(work, 'alice-tls')]));
  tlsKey = readFileSync(join(work, 'alice-tls.key'), 'utf8');
  tlsCert = readFileSync(join(work, 'alice-tls.crt'), 'utf8');
  caPems = cluster.adminIdentity().caPems;
  knownHosts = join(work, 'known_hosts');
  writeFileSync(knownHosts, ok(await cluster.wctl(['auth', 'export', '--type', 'host'])));
  baseline = readVitals(cluster.pid);
});

after(cleanup);

/** Writes `key` + `certLine` as an OpenSSH identity and an ssh_config using it; returns the config. */
function identity(name: string, certLine: string, key = sshKey): string {
  const file = join(work, name);
  copyFileSync(key, file);
  writeFileSync(`${file}-cert.pub`, certLine);
  return writeDirectSSHConfig(join(work, `${name}.ssh_config`), file, knownHosts);
}

function refused(r: RunResult, what: string): void {
  assert.equal(r.timedOut, false, `${what}: ssh hung`);
  assert.equal(r.code, 255, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.stdout, '', `${what}: something ran`);
  assert.match(r.stderr, /Permission denied \(publickey\)/, what);
}

/** Waits for a log line of the ward process whose reason matches (why the refusal happened). */
async function assertLoggedReason(msg: RegExp, reason: RegExp): Promise<void> {
  const seen = () =>
    cluster.log
      .split('\n')
      .filter((l) => /refused|denied/.test(l))
      .slice(-6)
      .join('\n');
  await poll(
    `${msg} with ${reason} in the log`,
    async () =>
      cluster.log.split('\n').some((line) => {
        if (!line.startsWith('{')) return false;
        const e = JSON.parse(line) as { msg?: string; reason?: string };
        return msg.test(e.msg ?? '') && reason.test(e.reason ?? '');
      })
        ? true
        : undefined,
    5_000,
    50,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; the latest refusals:\n${seen()}`);
  });
}

/**
 * ssh2's client presents whatever certificate it is given; OpenSSH refuses to send some (a host
 * certificate as a user's, say), so for those only ssh2 shows what the node and the proxy do with them.
 */
function ssh2Login(port: string, username: string, keyPem: string, certLine: string): Promise<'accepted' | 'refused'> {
  const client = new ssh2.Client();
  return new Promise((resolve, reject) => {
    client.once('ready', () => {
      client.end();
      resolve('accepted');
    });
    client.once('error', (err: Error & { level?: string }) => {
      client.end();
      if (err.level === 'client-authentication') resolve('refused');
      else reject(err);
    });
    client.connect({
      host: '127.0.0.1',
      port: Number(port),
      username,
      readyTimeout: 10_000,
      hostVerifier: () => true,
      privateKey: keyPem,
      certificate: Buffer.from(certLine.trim().split(' ')[1]!, 'base64'),
    } as ssh2.ConnectConfig);
  });
}

async function assertRefusedEverywhereSSH2(keyPem: string, certLine: string, reason: RegExp): Promise<void> {
  assert.equal(await ssh2Login(nodePort, 'root', keyPem, certLine), 'refused', 'at the node');
  await assertLoggedReason(/authentication refused|ssh access denied/, reason);
  assert.equal(await ssh2Login(proxyPort, 'alice', keyPem, certLine), 'refused', 'at the proxy');
  await assertLoggedReason(/proxy ssh: certificate refused/, reason);
}

/** ssh to the node's own port (the node decides), and through the proxy as jump host (the proxy decides first). */
async function assertRefusedEverywhere(cfg: string, reason: RegExp): Promise<void> {
  refused(await run('ssh', ['-F', cfg, '-p', nodePort, 'root@127.0.0.1', 'true']), 'at the node');
  await assertLoggedReason(/authentication refused|ssh access denied/, reason);
  refused(
    await run('ssh', ['-F', cfg, '-J', `alice@127.0.0.1:${proxyPort}`, `root@${target.node}`, 'true']),
    'at the proxy',
  );
  await assertLoggedReason(/proxy ssh: certificate refused/, reason);
}

describe('certificates that must not work', () => {
  describe('OpenSSH certificates at the proxy and the node', { concurrency: 1 }, () => {
    it("accepts alice's real certificate (the control case)", async () => {
      const cfg = identity('real', sshCertLine);
      assert.equal(ok(await run('ssh', ['-F', cfg, '-p', nodePort, 'root@127.0.0.1', 'echo node'])).trim(), 'node');
      assert.equal(
        ok(
          await run('ssh', ['-F', cfg, '-J', `alice@127.0.0.1:${proxyPort}`, `root@${target.node}`, 'echo proxy']),
        ).trim(),
        'proxy',
      );
    });

    it('refuses a certificate that is not valid yet', async () => {
      const line = await resignSSHCert(cluster, sshCertLine, (f) => ({
        ...f,
        validAfter: new Date(Date.now() + 3_600_000),
        validBefore: new Date(Date.now() + 7_200_000),
      }));
      await assertRefusedEverywhere(identity('future', line), /not yet valid/);
    });

    it('refuses a certificate whose principals were edited after signing', async () => {
      // Signed for "roox", then the bytes changed to "root": same length, the signature no longer matches.
      const signed = await resignSSHCert(cluster, sshCertLine, (f) => ({ ...f, principals: ['roox'] }));
      const blob = Buffer.from(signed.split(' ')[1]!, 'base64');
      const at = blob.indexOf('roox');
      assert.ok(at > 0);
      blob.write('root', at, 'latin1');
      // (OpenSSH may decline to offer such a certificate at all; ssh2 sends it as it is.)
      await assertRefusedEverywhereSSH2(
        readFileSync(sshKey, 'utf8'),
        `${signed.split(' ')[0]} ${blob.toString('base64')}`,
        /invalid CA signature/,
      );
    });

    it('refuses a certificate signed for another cluster by the same CA key', async () => {
      const line = await resignSSHCert(cluster, sshCertLine, (f) => ({
        ...f,
        extensions: { ...f.extensions, 'ward-cluster@ward.dev': 'elsewhere' },
      }));
      await assertRefusedEverywhere(identity('other-cluster', line), /another cluster/);
    });

    it("refuses a node's host certificate used as a user certificate", async () => {
      const node = JSON.parse(readFileSync(join(cluster.dataDir, 'node', 'identity.json'), 'utf8')) as {
        sshKey: string;
        sshCert: string;
      };
      // Signed by the host CA, which no one trusts for users.
      await assertRefusedEverywhereSSH2(node.sshKey, node.sshCert, /not signed by a trusted certificate authority/);
      // And a host-type certificate from the user CA itself: refused for its type.
      const hostType = await resignSSHCert(cluster, sshCertLine, (f) => ({
        ...f,
        certType: 'host',
        criticalOptions: {},
      }));
      await assertRefusedEverywhereSSH2(
        readFileSync(sshKey, 'utf8'),
        hostType,
        /expected a user certificate, got a host certificate/,
      );
    });

    it('refuses a certificate whose role was deleted since it was issued', async () => {
      ok(
        await cluster.wctl(['create', '-f', '-'], {
          stdin:
            'kind: role\nversion: v1\nmetadata: {name: temp-root}\nspec:\n  allow: {logins: [root], node_labels: ' +
            '{"*": "*"}}\n',
        }),
      );
      ok(await cluster.wctl(['users', 'add', 'tom', '--roles', 'temp-root', '--logins', 'root']));
      const key = join(work, 'tom');
      ok(await cluster.wctl(['auth', 'sign', '--user', 'tom', '--format', 'openssh', '--out', key]));
      const cfg = identity('tom-id', readFileSync(`${key}-cert.pub`, 'utf8'), key);
      ok(await run('ssh', ['-F', cfg, '-p', nodePort, 'root@127.0.0.1', 'true']));
      // Take the role from tom (his certificate still names it), then delete it.
      const user = JSON.parse((await cluster.adminClient().getResource({ kind: 'user', name: 'tom' })).json);
      user.spec.roles = ['access'];
      await cluster.adminClient().upsertResource({ resource: { json: JSON.stringify(user) }, overwrite: true });
      ok(await cluster.wctl(['rm', 'role/temp-root']));
      // The node's and the proxy's role caches are watch-fed: the refusal comes within moments.
      await poll('the node to refuse tom', async () =>
        (await run('ssh', ['-F', cfg, '-p', nodePort, 'root@127.0.0.1', 'true'])).code === 255 ? true : undefined,
      );
      await assertRefusedEverywhere(cfg, /role "temp-root" no longer exists/);
    });
  });

  describe('X.509 certificates at the Auth API and the proxy', { concurrency: 1 }, () => {
    const denied = (pattern: RegExp) => (err: Error) => err instanceof AccessDenied && pattern.test(err.message);
    const client = (certPem: string, keyPem = tlsKey) => cluster.client({ keyPem, certPem, caPems });

    it("accepts alice's real certificate, reissued unchanged (the control case)", async () => {
      await client(await reissueTLSCert(cluster, tlsCert, {})).listResources({ kind: 'node' });
    });

    it('refuses a certificate that is not valid yet', async () => {
      const future = await reissueTLSCert(cluster, tlsCert, {
        notBefore: new Date(Date.now() + 3_600_000),
        notAfter: new Date(Date.now() + 7_200_000),
      });
      await assert.rejects(client(future).listResources({ kind: 'node' }), denied(/not valid yet/));
    });

    it('refuses a certificate whose identity was edited after signing', async () => {
      // Roles edited in the DER: one byte of the identity JSON changed, the signature left as it was.
      const der = Buffer.from(tlsCert.replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const at = der.indexOf('"access"');
      assert.ok(at > 0, 'the identity names the access role');
      der.write('"editor"', at, 'latin1');
      const edited =
        `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ` +
        `CERTIFICATE-----\n`;
      // Refused in the handshake (the session closes) or by the API: either way, never served.
      await assert.rejects(
        client(edited).listResources({ kind: 'user' }),
        (err: Error) =>
          denied(/not from this cluster's certificate authority/)(err) ||
          /Session closed|stream closed|socket hang up|ECONNRESET/.test(err.message),
      );
    });

    it('refuses a certificate issued for another cluster by the same CA key', async () => {
      const other = await reissueTLSCert(cluster, tlsCert, { identity: (id) => ({ ...id, cluster: 'elsewhere' }) });
      await assert.rejects(client(other).listResources({ kind: 'node' }), denied(/another cluster/));
    });

    it("refuses a node's host certificate as a user at the proxy's SSH-over-TLS door", async () => {
      const node = JSON.parse(readFileSync(join(cluster.dataDir, 'node', 'identity.json'), 'utf8')) as {
        tlsKey: string;
        tlsCert: string;
      };
      const answer = await sshOverTLS(node.tlsCert, node.tlsKey);
      assert.match(answer, /^ERR access denied/);
      assert.match(await sshOverTLS(tlsCert, tlsKey), /^OK/, 'the control: alice gets through');
    });

    it("refuses a user certificate in place of an agent's host certificate on the reverse tunnel", async () => {
      const closed = await new Promise<boolean>((resolve) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: Number(proxyPort),
          ALPNProtocols: ['ward-reversetunnel'],
          key: tlsKey,
          cert: tlsCert,
          ca: caPems,
          servername: 'localhost',
          checkServerIdentity: () => undefined,
        });
        s.on('error', () => undefined);
        s.resume();
        const timer = setTimeout(() => {
          s.destroy();
          resolve(false);
        }, 5_000);
        s.once('close', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      assert.equal(closed, true, 'the tunnel stayed open for a user certificate');
      await poll(
        'the refusal in the log',
        async () => (/tunnel peer is not a host/.test(cluster.log) ? true : undefined),
        5_000,
        50,
      );
    });
    it('drops an agent that breaks the tunnel record layer after a valid handshake', async () => {
      // A host certificate the proxy accepts (a node's key, its own host id), used by a peer that then misbehaves.
      const node = JSON.parse(readFileSync(join(cluster.dataDir, 'node', 'identity.json'), 'utf8')) as {
        tlsKey: string;
        tlsCert: string;
      };
      const cert = await reissueTLSCert(cluster, node.tlsCert, {
        identity: (id) => ({ ...id, username: 'hostile-agent', hostId: 'hostile-agent' }),
      });
      const agentTLS = (socket: Duplex) =>
        tls.connect({
          socket,
          ALPNProtocols: ['ward-reversetunnel'],
          key: node.tlsKey,
          cert,
          ca: caPems,
          servername: 'localhost',
          minVersion: 'TLSv1.3',
          checkServerIdentity: () => undefined,
        });
      const closedWithin = (s: { once(e: 'close', f: () => void): unknown; destroy(): void }, ms: number) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            s.destroy();
            resolve(false);
          }, ms);
          s.once('close', () => {
            clearTimeout(timer);
            resolve(true);
          });
        });

      // Its multiplexer over TLS, as an agent from before the record layer would speak.
      const old = agentTLS(net.connect({ host: '127.0.0.1', port: Number(proxyPort) }));
      old.on('error', () => undefined);
      old.once('secureConnect', () => old.write(Buffer.from([1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])));
      old.resume();
      assert.equal(await closedWithin(old, 5_000), true, 'the proxy kept a tunnel that never switched');
      await poll(
        'the refusal in the log',
        async () => (/instead of switching to records/.test(cluster.log) ? true : undefined),
        5_000,
        50,
      ).catch((e) => {
        console.log(
          cluster.log
            .split('\n')
            .filter((l) => /tunnel/.test(l))
            .slice(-5)
            .join('\n'),
        );
        throw e;
      });

      // A proper switch, then a record it did not seal (a forged one, as a man in the middle would send).
      const channel = new RecordChannel(net.connect({ host: '127.0.0.1', port: Number(proxyPort) }), {
        switchTimeoutMs: 5_000,
      });
      channel.on('error', () => undefined);
      const t = agentTLS(channel.transport!);
      t.on('error', () => undefined);
      t.once('secureConnect', () => channel.switchFromTLS(t, 'client'));
      channel.resume();
      await poll('the switch', async () => (channel.switched ? true : undefined), 5_000, 20);
      channel.raw.write(Buffer.concat([Buffer.from([0, 0, 0, 40]), randomBytes(40)]));
      assert.equal(await closedWithin(channel, 5_000), true, 'the proxy kept a tunnel after a forged record');
      await poll(
        'the refusal in the log',
        async () => (/record failed authentication/.test(cluster.log) ? true : undefined),
        5_000,
        50,
      );
    });
  });

  it('is still up, serves a real user, and has given back its descriptors and memory', async () => {
    await target.assertServing();
    await assertSettled(cluster, baseline);
  });
});

/** `wsh proxy ssh`'s door: mutual TLS with ALPN ward-proxy-ssh, "HOST:PORT\n", then the proxy's answer line. */
function sshOverTLS(certPem: string, keyPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      {
        host: '127.0.0.1',
        port: Number(proxyPort),
        ALPNProtocols: ['ward-proxy-ssh'],
        key: keyPem,
        cert: certPem,
        ca: caPems,
        servername: 'localhost',
        checkServerIdentity: () => undefined,
      },
      () => {
        s.write(`${target.node}:22\n`);
      },
    );
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) {
        s.destroy();
        resolve(text);
      }
    });
    s.on('error', reject);
    setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer: ${text}`));
    }, 10_000);
  });
}
