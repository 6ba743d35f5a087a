// End to end: host certificates that expire while everything runs. A cluster with a 20-second host certificate TTL
// (auth_service.host_cert_ttl) and two nodes joined with tokens, one tunnelled and one listening: each node renews its
// TLS and SSH certificates for the same keys before they expire and keeps them in its data dir; the auth API's own
// certificate, the local admin's and the proxy's are renewed in process. Once the nodes' first certificates have
// expired, OpenSSH still reaches both through the proxy, the nodes still report to the audit log, and wctl works. A
// node started with a certificate that expired while it was down is told to join again.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  cleanup,
  delay,
  errorLines,
  makeTempDir,
  poll,
  startAgent,
  startCluster,
  ward,
  type Cluster,
  type NodeAgent,
} from './harness.ts';
import { addUser, ok, sshAs, type TestUser } from './users.ts';

const TTL_S = 20;
let main: Cluster;
let alice: TestUser;
let tunnelled: NodeAgent;
let listening: NodeAgent;
/** Both nodes' identities as they joined, before any renewal. */
let first: KeptIdentity[];

interface KeptIdentity {
  hostId: string;
  tlsKey: string;
  tlsCert: string;
  sshCert: string;
}
const kept = (agent: NodeAgent): KeptIdentity =>
  JSON.parse(readFileSync(join(agent.root, 'data', 'node', 'identity.json'), 'utf8')) as KeptIdentity;

before(async () => {
  const work = makeTempDir('ward-e2e-hostcerts-');
  main = await startCluster({ hostCertTTL: `${TTL_S}s` });
  alice = await addUser(main, work, 'alice', 'access');
  [tunnelled, listening] = await Promise.all([
    startAgent(main, 'renewtun', ['--tunnel']),
    startAgent(main, 'renewdirect'),
  ]);
  first = [kept(tunnelled), kept(listening)];
});

after(async () => {
  await cleanup();
});

describe('host certificate renewal', () => {
  it(
    "renews every host's certificates before they expire, " + 'and everything keeps working after the first ones ended',
    async () => {
      const firstCerts = first.map((id) => new X509Certificate(id.tlsCert));
      // Renewed with a third of the lifetime left: about 13 s after the join.
      const renewed = await poll(
        'both nodes to keep renewed certificates',
        async () => {
          const now = [kept(tunnelled), kept(listening)];
          return now.every((id, i) => id.tlsCert !== first[i]!.tlsCert) ? now : undefined;
        },
        TTL_S * 1000,
        200,
      );
      for (const [i, id] of renewed.entries()) {
        const was = firstCerts[i]!;
        const cert = new X509Certificate(id.tlsCert);
        assert.equal(id.hostId, first[i]!.hostId);
        assert.equal(id.tlsKey, first[i]!.tlsKey, 'the same private key in identity.json');
        assert.ok(cert.publicKey.equals(was.publicKey), 'certifying the same key');
        assert.notEqual(cert.serialNumber, was.serialNumber);
        assert.equal(cert.subjectAltName, was.subjectAltName);
        assert.ok(
          Date.parse(cert.validTo) > Date.parse(was.validTo),
          `notAfter moved: ${was.validTo} -> ${cert.validTo}`,
        );
        assert.notEqual(id.sshCert, first[i]!.sshCert, 'the SSH host certificate too');
      }

      // Past the end of the first certificates (and of the cluster's own first ones, issued before them).
      const firstEnd = Math.max(...firstCerts.map((c) => Date.parse(c.validTo)));
      await delay(Math.max(0, firstEnd + 1_500 - Date.now()));
      for (const node of ['renewtun', 'renewdirect']) {
        const r = await sshAs(alice, [`root@${node}`, `echo renewed-${node}`]);
        assert.equal(
          r.stdout.trim(),
          `renewed-${node}`,
          `ssh to ${node} after its first certificate expired: ${r.stderr}`,
        );
      }
      // The nodes' Auth API clients present the renewed certificates: their audit events arrive. wctl's own identity
      // (renewed in process) reads them.
      for (const agent of [tunnelled, listening]) {
        await poll(
          `${agent.name}'s exec event`,
          async () => {
            const lines = ok(await main.wctl(['events', '--format', 'json', '--type', 'exec', '--limit', '100']))
              .split('\n')
              .filter(Boolean);
            return lines
              .map((l) => JSON.parse(l) as Record<string, unknown>)
              .some((e) => e.server_id === agent.hostId && e.command === `echo renewed-${agent.name}`)
              ? true
              : undefined;
          },
          10_000,
          250,
        );
      }
      for (const agent of [tunnelled, listening]) {
        assert.match(agent.log, /host certificates renewed/);
        // (A renewal that failed once under load and then succeeded would be fine: only these would not.)
        assert.doesNotMatch(agent.log, /expired at|heartbeat failed/, `${agent.name} log:\n${agent.log.slice(-3000)}`);
      }
      assert.match(main.log, /"service":"auth API".*service certificate renewed/);
      assert.match(main.log, /"service":"local admin".*service certificate renewed/);
      assert.match(main.log, /"component":"proxy".*host certificates renewed/);
      assert.doesNotMatch(main.log, /expired at|heartbeat failed/);
    },
  );

  it('refuses to start a node whose kept certificate expired while it was down, and says to join again', async () => {
    // The listening node's first identity, kept before its renewal: its certificate has expired by now.
    const dir = makeTempDir('ward-e2e-expired-');
    mkdirSync(join(dir, 'data', 'node'), { recursive: true });
    writeFileSync(join(dir, 'data', 'node', 'identity.json'), JSON.stringify(first[1]));
    writeFileSync(join(dir, 'ward.yaml'), 'ssh_service:\n  hostname: renewdirect\n  listen_addr: 127.0.0.1:0\n');
    const r = await ward([
      'start',
      '-c',
      join(dir, 'ward.yaml'),
      '-d',
      join(dir, 'data'),
      '--roles',
      'node',
      '--auth-server',
      main.proxyAddr,
    ]);
    assert.notEqual(r.code, 0);
    const lines = errorLines(r);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /host certificate expired at .*: join it again with a new token \(wctl tokens add --type node/,
    );
  });
});
