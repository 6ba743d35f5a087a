// Test-only forgery: re-signs a real certificate with changed fields using the cluster's own CA keys,
// read straight from the stopped-or-running cluster's SQLite backend (read-only). This is how the
// suite makes certificates only a compromised CA could make (not yet valid, another cluster's), and
// so checks that the targets test more than the signature.
// @peculiar/x509 needs the reflect polyfill loaded before it (src/crypto/x509.ts does the same).
import 'reflect-metadata';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import Database from 'better-sqlite3';
import { parseCertificate, signCertificate, softwareSigner, type CertificateFields } from '../../src/crypto/sshcert.ts';
import { formatAuthorizedKey } from '../../src/crypto/sshkeys.ts';
import type { Cluster } from '../harness.ts';

/** The Ward identity extension of X.509 certificates (src/crypto/x509.ts IDENTITY_OID). */
const IDENTITY_OID = '1.3.9999.7.1';

function caPrivateKey(cluster: Cluster, type: 'user' | 'tls'): { privatePem: string; publicText: string } {
  const db = new Database(join(cluster.dataDir, 'ward.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT value FROM items WHERE key = ?').get(`/cert_authority/${type}`) as
      | { value: string }
      | undefined;
    if (!row) throw new Error(`no ${type} CA in the backend`);
    const key = (JSON.parse(row.value) as { spec: { active_keys: Array<{ public: string; private: string }> } }).spec
      .active_keys[0]!;
    return { privatePem: key.private, publicText: key.public };
  } finally {
    db.close();
  }
}

/** Re-signs the OpenSSH certificate line `certLine` with the cluster's user CA, `change` applied to its fields. */
export async function resignSSHCert(
  cluster: Cluster,
  certLine: string,
  change: (f: CertificateFields) => CertificateFields,
): Promise<string> {
  const cert = parseCertificate(Buffer.from(certLine.trim().split(' ')[1]!, 'base64'));
  const fields: CertificateFields = {
    publicKey: cert.publicKey,
    serial: cert.serial,
    certType: cert.certType,
    keyId: cert.keyId,
    principals: cert.principals,
    validAfter: cert.validAfter,
    validBefore: cert.validBefore,
    criticalOptions: cert.criticalOptions,
    extensions: cert.extensions,
  };
  const signer = softwareSigner(createPrivateKey(caPrivateKey(cluster, 'user').privatePem));
  const blob = await signCertificate(change(fields), signer);
  return formatAuthorizedKey(blob);
}

/**
 * Re-issues the X.509 certificate `certPem` (same subject and key) from the cluster's TLS CA, with
 * its validity and Ward identity changed by `change`.
 */
export async function reissueTLSCert(
  cluster: Cluster,
  certPem: string,
  change: { notBefore?: Date; notAfter?: Date; identity?: (id: Record<string, unknown>) => Record<string, unknown> },
): Promise<string> {
  const original = new x509.X509Certificate(certPem);
  const ca = caPrivateKey(cluster, 'tls');
  const caCert = new x509.X509Certificate(ca.publicText);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(ca.privatePem).export({ type: 'pkcs8', format: 'der' }),
    alg,
    false,
    ['sign'],
  );
  const ext = original.getExtension(IDENTITY_OID);
  if (!ext) throw new Error('the certificate carries no Ward identity');
  // The extension value is a DER UTF8String (tag 12) holding the identity JSON.
  const der = Buffer.from(ext.value);
  const headerLength = der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f);
  const identity = JSON.parse(der.subarray(headerLength).toString('utf8')) as Record<string, unknown>;
  const notAfter = change.notAfter ?? original.notAfter;
  const changed = { ...(change.identity ? change.identity(identity) : identity), expires: notAfter.toISOString() };
  const json = Buffer.from(JSON.stringify(changed));
  const length =
    json.length < 0x80
      ? Buffer.from([json.length])
      : json.length < 0x100
        ? Buffer.from([0x81, json.length])
        : Buffer.from([0x82, json.length >> 8, json.length & 0xff]);
  const value = Buffer.concat([Buffer.from([0x0c]), length, json]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01' + Buffer.from(webcrypto.getRandomValues(new Uint8Array(15))).toString('hex'),
    subject: original.subject,
    issuer: caCert.subject,
    notBefore: change.notBefore ?? original.notBefore,
    notAfter,
    publicKey: original.publicKey,
    signingKey: caKey,
    signingAlgorithm: alg,
    extensions: original.extensions
      .filter((e) => e.type !== IDENTITY_OID && e.type !== '2.5.29.35')
      .concat([new x509.Extension(IDENTITY_OID, false, value)]),
  });
  return cert.toString('pem');
}
