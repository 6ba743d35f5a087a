// What a TLS CA in each rotation phase means for the certificates hosts and clients hold: which CAs are trusted,
// which one servers present, which certificate is due to move to the signing key, and which CA signed a certificate.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { CertAuthority } from './types.ts';
import { createTLSCA, generateTLSKey, issueTLSCert } from '../crypto/x509.ts';
import { issuerOf, presentedTLSCA, tlsCertOutdated, trustedTLSCAs, type RotationPhase } from './rotation.ts';

const now = new Date();
let oldCA: { certPem: string; keyPem: string };
let newCA: { certPem: string; keyPem: string };
let fromOld: string;
let fromNew: string;

async function leafFrom(ca: { certPem: string; keyPem: string }): Promise<string> {
  const key = await generateTLSKey();
  const notAfter = new Date(now.getTime() + 3_600_000);
  return issueTLSCert({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    identity: {
      username: 'n1',
      roles: [],
      logins: [],
      cluster: 'c',
      expires: notAfter.toISOString(),
      kind: 'host',
      hostId: 'n1',
      systemRoles: ['node'],
    },
    publicKeyPem: key.publicKeyPem,
    notAfter,
    now,
    usage: 'both',
  });
}

/** The TLS CA in `phase`, as auth/rotation.ts leaves it: old = the key before the rotation, new = the one it made. */
function caIn(phase: RotationPhase): CertAuthority {
  const old = { public: oldCA.certPem };
  const made = { public: newCA.certPem };
  const [active, additional] =
    phase === 'standby'
      ? [[made], []]
      : phase === 'init'
        ? [[old], [made]]
        : phase === 'rollback'
          ? [[old], [made]]
          : [[made], [old]];
  return {
    kind: 'cert_authority',
    version: 'v1',
    metadata: { name: 'tls' },
    spec: { type: 'tls', cluster: 'c', active_keys: active, additional_keys: additional, rotation: { phase } },
  };
}

before(async () => {
  oldCA = await createTLSCA({ clusterName: 'c', commonName: 'c Ward TLS CA', now });
  newCA = await createTLSCA({ clusterName: 'c', commonName: 'c Ward TLS CA 2026-01-01T00:00:00Z', now });
  [fromOld, fromNew] = [await leafFrom(oldCA), await leafFrom(newCA)];
});

describe('TLS CA rotation, as hosts and clients read it', () => {
  it('names the CA that signed a certificate, and none for a foreign one', () => {
    assert.equal(issuerOf(fromOld, [newCA.certPem, oldCA.certPem]), oldCA.certPem);
    assert.equal(issuerOf(fromNew, [oldCA.certPem, newCA.certPem]), newCA.certPem);
    assert.equal(issuerOf(fromNew, [oldCA.certPem]), undefined);
  });

  it('trusts both keys during a rotation, signing key first; servers present the old one until update_servers', () => {
    assert.deepEqual(trustedTLSCAs(caIn('init')), [oldCA.certPem, newCA.certPem]);
    assert.deepEqual(trustedTLSCAs(caIn('update_clients')), [newCA.certPem, oldCA.certPem]);
    assert.deepEqual(trustedTLSCAs(caIn('standby')), [newCA.certPem]);
    assert.equal(presentedTLSCA(caIn('init')), oldCA.certPem);
    assert.equal(presentedTLSCA(caIn('update_clients')), oldCA.certPem);
    assert.equal(presentedTLSCA(caIn('update_servers')), newCA.certPem);
    assert.equal(presentedTLSCA(caIn('rollback')), oldCA.certPem);
  });

  it("moves a server's certificate in update_servers and at a rollback, a client-only one from update_clients", () => {
    const due = (phase: RotationPhase, cert: string, holder: 'server' | 'client') =>
      tlsCertOutdated(caIn(phase), cert, holder);
    assert.equal(due('init', fromOld, 'server'), false, 'init: the old key still signs');
    assert.equal(due('update_clients', fromOld, 'server'), false, 'update_clients: clients may not trust the new key');
    assert.equal(due('update_clients', fromOld, 'client'), true, 'update_clients: the local admin moves');
    assert.equal(due('update_servers', fromOld, 'server'), true);
    assert.equal(due('update_servers', fromNew, 'server'), false, 'already moved');
    assert.equal(due('rollback', fromNew, 'server'), true, 'rollback: back to the old key');
    assert.equal(due('rollback', fromOld, 'server'), false);
  });
});
