// Certificate issuance from client-supplied keys: what a client sends is checked before anything is signed.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { BadParameter } from '../api/errors.ts';
import { generateClientKeys } from '../crypto/clientkeys.ts';
import { softwareSigner } from '../crypto/sshcert.ts';
import { formatAuthorizedKey } from '../crypto/sshkeys.ts';
import { SSHWriter } from '../crypto/sshwire.ts';
import { issueUserSSHCert, type UserCertRequest } from './certs.ts';

const ca = softwareSigner(crypto.generateKeyPairSync('ed25519').privateKey);
const now = new Date();
const request = (sshPublicKey: string): UserCertRequest => ({
  username: 'alice',
  roles: ['access'],
  logins: ['alice'],
  traits: {},
  cluster: 'unit',
  sshPublicKey,
  tlsPublicKey: generateClientKeys('alice').tlsPublicKey,
  permitPortForwarding: false,
  permitAgentForwarding: false,
  now,
  expires: new Date(now.getTime() + 60_000),
});

describe('issueUserSSHCert', () => {
  it('certifies a well-formed client key', async () => {
    assert.match(
      await issueUserSSHCert(request(generateClientKeys('alice').sshPublicKey), ca),
      /^ssh-ed25519-cert-v01@openssh.com /,
    );
  });

  it('refuses a client key that is not a point on its curve', async () => {
    const offCurve = new SSHWriter()
      .string('ecdsa-sha2-nistp256')
      .string('nistp256')
      .string(Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]))
      .toBuffer();
    await assert.rejects(
      issueUserSSHCert(request(formatAuthorizedKey(offCurve, 'alice')), ca),
      (e) => e instanceof BadParameter && /not a valid point/.test(e.message),
    );
  });
});
