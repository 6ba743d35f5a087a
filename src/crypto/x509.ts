// X.509 for Ward's mutual TLS: the cluster TLS CA, the short-lived user and host certificates it issues,
// and the Ward identity (roles, logins, traits, cluster) those certificates carry in one JSON extension.
// Keys are ECDSA P-256 everywhere. Parsing here never decides trust: verifyChain or Node's TLS stack does.
import {
  X509Certificate as NodeX509,
  createHash,
  createPrivateKey,
  ECDH,
  createPublicKey,
  randomBytes,
  sign,
  webcrypto,
  type KeyObject,
} from 'node:crypto';
import { isIP } from 'node:net';
import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs it loaded first
import * as x509 from '@peculiar/x509';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import * as der from '../api/der.ts';
import { P256_SPKI_PREFIX } from './sshkeys.ts';
import {
  IDENTITY_OID,
  MAX_IDENTITY_BYTES,
  certDer,
  isIdentityName,
  parseIdentity,
  type Identity,
} from '../api/certinfo.ts';
import { CLOCK_SKEW_MS } from '../time/clock.ts';

// What clients read from certificates lives in api/certinfo.ts (no X.509 library: `wsh proxy ssh` loads it on
// every connection); re-exported here for the server side.
export {
  IDENTITY_OID,
  MAX_IDENTITY_BYTES,
  certExpiry,
  fingerprintSPKI,
  identityFromPeerCert,
  readIdentity,
  type Identity,
} from '../api/certinfo.ts';

// The library (used for CA certificates and parsing; leaves are written by hand) signs and hashes through a
// process-wide WebCrypto provider; Node's is the only one Ward uses.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const DAY_MS = 86_400_000;
const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export async function generateTLSKey(): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  return {
    privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    publicKeyPem: x509.PemConverter.encode(spki, 'PUBLIC KEY'),
  };
}

/**
 * A CA private key (PKCS#8 PEM, P-256) parsed for signing. Parsing the PEM is costly (OpenSSL 3 decoders),
 * so a KeyStore calls this once per CA key and passes the result to issueTLSCert as `caKey`.
 */
export function importCAKey(caKeyPem: string): KeyObject {
  let key;
  try {
    key = createPrivateKey(caKeyPem);
  } catch {
    throw new BadParameter('CA key is not a valid PEM private key');
  }
  assertP256(key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve, 'CA key');
  return key;
}

/**
 * The one place a CA private key signs a certificate. A PKCS#11 KeyStore will replace the key argument;
 * every leaf goes through here so that swap touches one function. ECDSA signatures in X.509 are the DER
 * SEQUENCE { r, s } (RFC 5758 3.2), which is what dsaEncoding 'der' gives.
 */
function signTBS(caKey: KeyObject, tbs: Buffer): Buffer {
  return der.sequence(tbs, ECDSA_WITH_SHA256, der.bitString(sign('sha256', tbs, { key: caKey, dsaEncoding: 'der' })));
}

export async function createTLSCA(opts: {
  clusterName: string;
  commonName?: string;
  now: Date;
  ttlDays?: number;
}): Promise<{ certPem: string; keyPem: string }> {
  if (!isIdentityName(opts.clusterName)) throw new BadParameter('invalid cluster name');
  if (opts.commonName !== undefined && !isIdentityName(opts.commonName))
    throw new BadParameter('invalid CA common name');
  const ttlDays = opts.ttlDays ?? 3650;
  if (!(ttlDays > 0)) throw new BadParameter('CA ttlDays must be positive');
  const { privateKeyPem, publicKeyPem } = await generateTLSKey();
  const subject: x509.JsonName = [{ O: [opts.clusterName] }, { CN: [opts.commonName ?? opts.clusterName] }];
  const publicKey = new x509.PublicKey(publicKeyPem);
  // A CA is made once per cluster or rotation, so it keeps the general library; leaves are built by hand below.
  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    importCAKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' }),
    P256,
    false,
    ['sign'],
  );
  const cert = await x509.X509CertificateGenerator.create({
    signingKey: signingKey as CryptoKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    serialNumber: randomSerial().toString('hex'),
    subject,
    issuer: subject,
    notBefore: new Date(opts.now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(opts.now.getTime() + ttlDays * DAY_MS),
    publicKey,
    extensions: [
      // pathlen 0: the cluster CA signs leaves directly and can never mint a sub-CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: privateKeyPem };
}

/** What issuing needs from a CA certificate; prepareIssuer makes it once per CA (the KeyStore caches it). */
export interface TLSIssuer {
  /** DER of the CA's subject Name: the issuer Name of every certificate it signs. */
  subjectDer: Buffer;
  notAfter: Date;
  /** The CA's key identifier, for the leaves' AuthorityKeyIdentifier (RFC 5280 4.2.1.1). */
  keyId: Buffer;
}

export function prepareIssuer(caCertPem: string): TLSIssuer {
  const ca = parseCert(caCertPem);
  const ski = ca.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  // Without an SKI, RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bits.
  const keyId = ski
    ? Buffer.from(ski, 'hex')
    : createHash('sha1')
        .update(
          Buffer.from(new NodeX509(Buffer.from(ca.rawData)).publicKey.export({ type: 'spki', format: 'der' })).subarray(
            -65,
          ),
        )
        .digest();
  return { subjectDer: Buffer.from(ca.subjectName.toArrayBuffer()), notAfter: ca.notAfter, keyId };
}

const ECDSA_WITH_SHA256 = der.sequence(der.oid('1.2.840.10045.4.3.2'));
const OID = {
  organization: der.oid('2.5.4.10'),
  commonName: der.oid('2.5.4.3'),
  basicConstraints: der.oid('2.5.29.19'),
  keyUsage: der.oid('2.5.29.15'),
  extKeyUsage: der.oid('2.5.29.37'),
  authorityKeyId: der.oid('2.5.29.35'),
  subjectAltName: der.oid('2.5.29.17'),
  identity: der.oid(IDENTITY_OID),
  clientAuth: der.oid('1.3.6.1.5.5.7.3.2'),
  serverAuth: der.oid('1.3.6.1.5.5.7.3.1'),
};

function extension(id: Buffer, critical: boolean, value: Buffer): Buffer {
  return der.sequence(id, ...(critical ? [der.TRUE] : []), der.octetString(value));
}

/** A directory string as the library wrote them: PrintableString when the text allows it, else UTF8String. */
function directoryString(text: string): Buffer {
  return /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(text) ? der.printableString(text) : der.utf8String(text);
}

function rdn(type: Buffer, value: string): Buffer {
  return der.set(der.sequence(type, directoryString(value)));
}

/**
 * The DER SubjectPublicKeyInfo of a P-256 public key (PEM), refusing anything else. The common form (an
 * uncompressed point with the named curve) is read directly and the point checked on the curve by OpenSSL's
 * point decoder (ECDH.convertKey, ~10 us; on-curve is the whole check for P-256, whose cofactor is 1); other
 * encodings go through OpenSSL's decoders and are re-encoded. Why: createPublicKey on the PEM and export to
 * DER took ~180 us per issuance, and a JWK import (which also checks the key's order) ~45 us.
 */
export function p256SPKI(publicKeyPem: string): Buffer {
  const m = /^-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\s*$/.exec(
    publicKeyPem.trim() + '\n',
  );
  const spki = m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : undefined;
  if (
    spki &&
    spki.length === P256_SPKI_PREFIX.length + 65 &&
    spki.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX) &&
    spki[P256_SPKI_PREFIX.length] === 0x04
  ) {
    try {
      ECDH.convertKey(spki.subarray(P256_SPKI_PREFIX.length), 'prime256v1');
    } catch {
      throw new BadParameter('subject public key is not a valid P-256 point');
    }
    return spki;
  }
  let key;
  try {
    key = createPublicKey(publicKeyPem);
  } catch {
    throw new BadParameter('subject public key is not a valid PEM public key');
  }
  assertP256(key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve, 'subject key');
  return key.export({ type: 'spki', format: 'der' });
}

/** The 4 or 16 bytes of an IP address (iPAddress GeneralName, RFC 5280 4.2.1.6). */
function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4) {
    const b = v4.split('.').map(Number);
    text = text.slice(0, -v4.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function pem(derBytes: Buffer): string {
  const b64 = derBytes.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  // PEM files end with a newline, so they concatenate into bundles.
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * Signs a user or host certificate for `publicKeyPem`. `identity.expires` is overwritten with the
 * certificate's notAfter (whole seconds), so the two can never disagree. The certificate is always the same
 * template (RFC 5280 v3: basicConstraints CA:FALSE and keyUsage digitalSignature, both critical; extended
 * key usage; authority key id; the identity; SANs for hosts), so it is written as DER directly.
 */
export async function issueTLSCert(opts: {
  caCertPem: string;
  caKeyPem: string;
  /** `importCAKey(caKeyPem)` done once by the caller (KeyStore cache); without it caKeyPem is parsed here. */
  caKey?: KeyObject;
  /** `prepareIssuer(caCertPem)` done once by the caller; without it caCertPem is parsed here. */
  issuer?: TLSIssuer;
  publicKeyPem: string;
  identity: Identity;
  notAfter: Date;
  now: Date;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'client' | 'server' | 'both';
}): Promise<string> {
  const ca = opts.issuer ?? prepareIssuer(opts.caCertPem);
  // X.509 times have one-second resolution; the identity's `expires` is set to exactly what the cert says.
  const notAfter = new Date(Math.floor(opts.notAfter.getTime() / 1000) * 1000);
  if (Number.isNaN(notAfter.getTime()) || notAfter <= opts.now) throw new BadParameter('notAfter must be after now');
  if (notAfter > ca.notAfter) throw new BadParameter('certificate would outlive its CA');
  const identity = parseIdentity({ ...opts.identity, expires: notAfter.toISOString() });
  const identityDer = encodeUTF8String(JSON.stringify(identity));
  if (identityDer.length > MAX_IDENTITY_BYTES) throw new BadParameter('identity is too large for a certificate');
  const spki = p256SPKI(opts.publicKeyPem);

  const sans: Buffer[] = [];
  for (const dns of opts.dnsNames ?? []) {
    // A host name or one leading wildcard label (`*.proxy.example.com` for app access).
    if (
      !/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$/.test(dns) ||
      dns.length > 253
    ) {
      throw new BadParameter(`invalid DNS name ${JSON.stringify(dns)}`);
    }
    sans.push(der.implicitPrimitive(2, Buffer.from(dns, 'latin1'))); // dNSName [2] IA5String
  }
  for (const ip of opts.ipAddresses ?? []) {
    if (isIP(ip) === 0) throw new BadParameter(`invalid IP address ${JSON.stringify(ip)}`);
    sans.push(der.implicitPrimitive(7, ipBytes(ip))); // iPAddress [7] OCTET STRING
  }

  const eku: Buffer[] = [];
  if (opts.usage !== 'server') eku.push(OID.clientAuth);
  if (opts.usage !== 'client') eku.push(OID.serverAuth);
  const extensions = [
    extension(OID.basicConstraints, true, der.sequence()), // cA FALSE is the DEFAULT, so the SEQUENCE is empty
    extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x07, 0x80])), // BIT STRING: digitalSignature (bit 0)
    extension(OID.extKeyUsage, false, der.sequence(...eku)),
    extension(OID.authorityKeyId, false, der.sequence(der.implicitPrimitive(0, ca.keyId))),
    // Non-critical: TLS stacks that do not know the OID (browsers, psql) must still accept the cert.
    extension(OID.identity, false, identityDer),
  ];
  if (sans.length > 0) extensions.push(extension(OID.subjectAltName, false, der.sequence(...sans)));

  const commonName = identity.kind === 'host' ? (identity.hostId ?? identity.username) : identity.username;
  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)), // v3
    der.unsignedInteger(randomSerial()),
    ECDSA_WITH_SHA256,
    ca.subjectDer,
    der.sequence(der.time(new Date(opts.now.getTime() - CLOCK_SKEW_MS)), der.time(notAfter)),
    der.sequence(rdn(OID.organization, identity.cluster), rdn(OID.commonName, commonName)),
    spki,
    der.explicit(3, der.sequence(...extensions)),
  );
  return pem(signTBS(opts.caKey ?? importCAKey(opts.caKeyPem), tbs));
}

/**
 * Throws AccessDenied unless `cert` is a leaf (not a CA) issued and signed by one of `caPems`, and both are
 * valid at `now`. For paths where Node's TLS stack is not the verifier (certs passed over the API, rotation).
 */
export function verifyChain(cert: string | Buffer, caPems: string[], now: Date): void {
  let leaf: x509.X509Certificate;
  let nodeLeaf: NodeX509;
  try {
    leaf = parseCert(cert);
    nodeLeaf = new NodeX509(Buffer.from(leaf.rawData));
  } catch {
    throw new AccessDenied('certificate is malformed');
  }
  if (nodeLeaf.ca) throw new AccessDenied('a CA certificate is not an identity');
  let reason = 'certificate is not signed by a trusted certificate authority';
  for (const caPem of caPems) {
    let ca: x509.X509Certificate;
    let nodeCA: NodeX509;
    try {
      ca = parseCert(caPem);
      nodeCA = new NodeX509(Buffer.from(ca.rawData));
    } catch {
      continue; // a broken trusted-CA entry must not turn into a crash; it simply trusts nothing
    }
    // checkIssued matches issuer/subject names, key identifiers and the CA's keyCertSign usage (OpenSSL
    // X509_check_issued); verify() then checks the signature itself, which is what defeats a look-alike CA.
    if (!nodeCA.ca || !nodeLeaf.checkIssued(nodeCA) || !nodeLeaf.verify(nodeCA.publicKey)) continue;
    // The same key may sit in an expired and a renewed CA cert; keep looking for a valid one.
    if (!isValidAt(ca, now)) {
      reason = 'certificate authority is expired or not yet valid';
      continue;
    }
    if (!isValidAt(leaf, now)) throw new AccessDenied('certificate is expired or not yet valid');
    return;
  }
  throw new AccessDenied(reason);
}

function isValidAt(cert: x509.X509Certificate, now: Date): boolean {
  return cert.notBefore.getTime() <= now.getTime() && now.getTime() <= cert.notAfter.getTime();
}

function parseCert(input: string | Buffer): x509.X509Certificate {
  const der = certDer(input);
  try {
    return new x509.X509Certificate(new Uint8Array(der));
  } catch {
    throw new BadParameter('certificate is malformed');
  }
}

function assertP256(type: string | undefined, curve: string | undefined, what: string): void {
  if (type !== 'ec' || (curve !== 'prime256v1' && curve !== 'P-256'))
    throw new BadParameter(`${what} must be ECDSA P-256`);
}

/**
 * A serial of 126 random bits (RFC 5280 4.1.2.2: positive, at most 20 octets, unpredictable): the top bit
 * cleared keeps the INTEGER positive, the next one set keeps it 16 octets long and minimally encoded.
 */
function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b;
}

// The extension value is DER (RFC 5280 §4.1: extnValue holds a DER encoding), here a UTF8String, so
// `openssl asn1parse` decodes it and `openssl x509 -text` still shows the JSON.
function encodeUTF8String(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  let len: Buffer;
  if (body.length < 0x80) len = Buffer.from([body.length]);
  else {
    const bytes: number[] = [];
    for (let n = body.length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([0x0c]), len, body]);
}
