// The software KeyStore caches parsed CA keys; a rotated CA key must be picked up on the next signature.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CertAuthority } from '../api/types.ts';
import { generateTLSKey, issueTLSCert, verifyChain } from '../crypto/x509.ts';
import { SoftwareKeyStore } from './keystore.ts';

const now = new Date();

function ca(type: 'user' | 'tls', key: { public: string; private?: string }): CertAuthority {
  return {
    kind: 'cert_authority',
    version: 'v1',
    metadata: { name: type },
    spec: { type, cluster: 'unit', active_keys: [key], additional_keys: [], rotation: { phase: 'standby' } },
  };
}

describe('SoftwareKeyStore', () => {
  it('signs SSH certificates with the new key once the user CA key changes', () => {
    const ks = new SoftwareKeyStore();
    const first = ca('user', ks.newSSHKey('a'));
    const second = ca('user', ks.newSSHKey('b'));
    const a = ks.sshSigner(first).publicKeyBlob;
    assert.deepEqual(ks.sshSigner(first).publicKeyBlob, a);
    assert.notDeepEqual(ks.sshSigner(second).publicKeyBlob, a);
  });

  it('issues X.509 certificates that chain to the current TLS CA, before and after a key change', async () => {
    const ks = new SoftwareKeyStore();
    const subject = await generateTLSKey();
    const issue = (authority: CertAuthority) =>
      issueTLSCert({
        ...ks.tlsSigner(authority),
        publicKeyPem: subject.publicKeyPem,
        identity: {
          username: 'alice',
          roles: [],
          logins: [],
          cluster: 'unit',
          expires: now.toISOString(),
          kind: 'user',
        },
        notAfter: new Date(now.getTime() + 3_600_000),
        now,
        usage: 'client',
      });
    const first = ca('tls', await ks.newTLSKey('unit', 'unit', now));
    const second = ca('tls', await ks.newTLSKey('unit', 'unit', now));
    verifyChain(await issue(first), [first.spec.active_keys[0]!.public], now);
    const rotated = await issue(second);
    verifyChain(rotated, [second.spec.active_keys[0]!.public], now);
    assert.throws(() => verifyChain(rotated, [first.spec.active_keys[0]!.public], now));
  });
});
