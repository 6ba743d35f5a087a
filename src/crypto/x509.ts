// X.509 for Ward's mutual TLS: the cluster TLS CA, the short-lived user and host certificates it issues,
// and the Ward identity (roles, logins, traits, cluster) those certificates carry in one JSON extension.
// Keys are ECDSA P-256 everywhere. Parsing here never decides trust: verifyChain or Node's TLS stack does.
import {
  X509Certificate as NodeX509,
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { isIP } from 'node:net';
import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs it loaded first
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { z } from 'zod';
import { AccessDenied, BadParameter } from '../api/errors.ts';

// The library signs and hashes through a process-wide WebCrypto provider; Node's is the only one Ward uses
// for software keys (a PKCS#11 KeyStore will hand its own CryptoKey to signWithCAKey instead).
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Private OID of the extension that holds the Ward identity as JSON (a DER UTF8String). */
export const IDENTITY_OID = '1.3.9999.7.1';
/** Upper bound for the identity extension and, with room for the rest, for a whole certificate. */
export const MAX_IDENTITY_BYTES = 64 * 1024;
const MAX_CERT_BYTES = 2 * MAX_IDENTITY_BYTES;
/** Certificates start a minute in the past so a peer whose clock lags a little still accepts them. */
const CLOCK_SKEW_MS = 60_000;
const DAY_MS = 86_400_000;
const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface Identity {
  username: string;
  roles: string[];
  logins: string[];
  traits?: Record<string, string[]>;
  cluster: string;
  /** ISO time; always equals the certificate's notAfter. */
  expires: string;
  kind: 'user' | 'host';
  hostId?: string;
  /** For hosts: the system role(s), e.g. `node`, `proxy`. */
  systemRoles?: string[];
  routeToCluster?: string;
}

const name = z.string().min(1).max(255);
// Strict: a certificate whose identity has fields this build does not know is refused rather than half-read.
const identitySchema = z
  .strictObject({
    username: name,
    roles: z.array(name).max(1000),
    logins: z.array(name).max(1000),
    traits: z.record(name, z.array(z.string().max(4096)).max(1000)).optional(),
    cluster: name,
    expires: z.iso.datetime(),
    kind: z.enum(['user', 'host']),
    hostId: name.optional(),
    systemRoles: z.array(name).max(100).optional(),
    routeToCluster: name.optional(),
  })
  .refine((id) => id.kind !== 'host' || id.hostId !== undefined, 'a host identity needs a hostId');

function parseIdentity(value: unknown): Identity {
  const result = identitySchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new BadParameter(`invalid identity: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'bad shape'}`);
  }
  return result.data;
}

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
 * The one place a CA private key is used. A KeyStore (software or PKCS#11) will replace the key argument;
 * everything that builds certificates goes through here so that swap touches one function.
 */
async function signWithCAKey(
  caKey: string | Promise<CryptoKey>,
  params: Omit<x509.X509CertificateCreateWithKeyParams, 'signingKey' | 'signingAlgorithm'>,
): Promise<x509.X509Certificate> {
  const signingKey = await (typeof caKey === 'string' ? importCAKey(caKey) : caKey);
  return x509.X509CertificateGenerator.create({ ...params, signingKey, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
}

/**
 * A CA private key (PKCS#8 PEM, P-256) as a non-extractable WebCrypto signing key. Parsing the PEM is the
 * costly part of issuing (OpenSSL 3 decoders), so a KeyStore may call this once per CA key and pass the
 * result to issueTLSCert as `caKey`.
 */
export async function importCAKey(caKeyPem: string): Promise<CryptoKey> {
  let key;
  try {
    key = createPrivateKey(caKeyPem);
  } catch {
    throw new BadParameter('CA key is not a valid PEM private key');
  }
  assertP256(key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve, 'CA key');
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', pkcs8, P256, false, ['sign']) as Promise<CryptoKey>;
}

export async function createTLSCA(opts: {
  clusterName: string;
  commonName?: string;
  now: Date;
  ttlDays?: number;
}): Promise<{ certPem: string; keyPem: string }> {
  if (!name.safeParse(opts.clusterName).success) throw new BadParameter('invalid cluster name');
  if (opts.commonName !== undefined && !name.safeParse(opts.commonName).success) throw new BadParameter('invalid CA common name');
  const ttlDays = opts.ttlDays ?? 3650;
  if (!(ttlDays > 0)) throw new BadParameter('CA ttlDays must be positive');
  const { privateKeyPem, publicKeyPem } = await generateTLSKey();
  const subject: x509.JsonName = [{ O: [opts.clusterName] }, { CN: [opts.commonName ?? opts.clusterName] }];
  const publicKey = new x509.PublicKey(publicKeyPem);
  const cert = await signWithCAKey(privateKeyPem, {
    serialNumber: randomSerial(),
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

/**
 * Signs a user or host certificate for `publicKeyPem`. `identity.expires` is overwritten with the
 * certificate's notAfter (whole seconds), so the two can never disagree.
 */
export async function issueTLSCert(opts: {
  caCertPem: string;
  caKeyPem: string;
  /** `importCAKey(caKeyPem)` done once by the caller (KeyStore cache); without it caKeyPem is parsed here. */
  caKey?: Promise<CryptoKey>;
  publicKeyPem: string;
  identity: Identity;
  notAfter: Date;
  now: Date;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'client' | 'server' | 'both';
}): Promise<string> {
  const ca = parseCert(opts.caCertPem);
  // X.509 times have one-second resolution; the identity's `expires` is set to exactly what the cert says.
  const notAfter = new Date(Math.floor(opts.notAfter.getTime() / 1000) * 1000);
  if (Number.isNaN(notAfter.getTime()) || notAfter <= opts.now) throw new BadParameter('notAfter must be after now');
  if (notAfter > ca.notAfter) throw new BadParameter('certificate would outlive its CA');
  const identity = parseIdentity({ ...opts.identity, expires: notAfter.toISOString() });
  const identityDer = encodeUTF8String(JSON.stringify(identity));
  if (identityDer.length > MAX_IDENTITY_BYTES) throw new BadParameter('identity is too large for a certificate');

  let subjectKey;
  try {
    subjectKey = createPublicKey(opts.publicKeyPem);
  } catch {
    throw new BadParameter('subject public key is not a valid PEM public key');
  }
  assertP256(subjectKey.asymmetricKeyType, subjectKey.asymmetricKeyDetails?.namedCurve, 'subject key');

  const sans: x509.JsonGeneralName[] = [];
  for (const dns of opts.dnsNames ?? []) {
    // A host name or one leading wildcard label (`*.proxy.example.com` for app access).
    if (!/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$/.test(dns) || dns.length > 253) {
      throw new BadParameter(`invalid DNS name ${JSON.stringify(dns)}`);
    }
    sans.push({ type: 'dns', value: dns });
  }
  for (const ip of opts.ipAddresses ?? []) {
    if (isIP(ip) === 0) throw new BadParameter(`invalid IP address ${JSON.stringify(ip)}`);
    sans.push({ type: 'ip', value: ip });
  }

  const eku: string[] = [];
  if (opts.usage !== 'server') eku.push(x509.ExtendedKeyUsage.clientAuth);
  if (opts.usage !== 'client') eku.push(x509.ExtendedKeyUsage.serverAuth);
  const caKeyId = ca.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(eku, false),
    caKeyId
      ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
      : await x509.AuthorityKeyIdentifierExtension.create(ca.publicKey),
    // Non-critical: TLS stacks that do not know the OID (browsers, psql) must still accept the cert.
    new x509.Extension(IDENTITY_OID, false, new Uint8Array(identityDer)),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));

  const commonName = identity.kind === 'host' ? (identity.hostId ?? identity.username) : identity.username;
  const cert = await signWithCAKey(opts.caKey ?? opts.caKeyPem, {
    serialNumber: randomSerial(),
    subject: [{ O: [identity.cluster] }, { CN: [commonName] }],
    issuer: ca.subjectName,
    notBefore: new Date(opts.now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    publicKey: subjectKey.export({ type: 'spki', format: 'der' }),
    extensions,
  });
  return cert.toString('pem') + '\n'; // PEM files end with a newline, so they concatenate into bundles
}

/**
 * Reads the Ward identity of a certificate (PEM or DER). It does NOT check who signed it: call it only on a
 * certificate that verifyChain or the TLS handshake has already accepted.
 */
export function readIdentity(cert: string | Buffer): Identity {
  const exts = parseCert(cert).getExtensions(IDENTITY_OID);
  // Two identity extensions would let the reader and the auditor disagree about who this is.
  if (exts.length !== 1) throw new BadParameter(exts.length === 0 ? 'certificate carries no Ward identity' : 'duplicate identity extension');
  const value = new Uint8Array(exts[0]!.value);
  if (value.length > MAX_IDENTITY_BYTES) throw new BadParameter('identity extension is too large');
  let json: unknown;
  try {
    // zod silently drops a `__proto__` key; refuse it instead, so what was signed is what is read.
    json = JSON.parse(decodeUTF8String(value), (key, v: unknown) => {
      if (key === '__proto__') throw new BadParameter('invalid identity: reserved key __proto__');
      return v;
    });
  } catch (err) {
    if (err instanceof BadParameter) throw err;
    throw new BadParameter('identity extension is not valid JSON');
  }
  return parseIdentity(json);
}

/** For TLS servers, after the handshake verified the client cert against the CA (`socket.authorized`). */
export function identityFromPeerCert(peer: PeerCertificate | DetailedPeerCertificate): Identity {
  // Node hands `{}` when the client sent no certificate.
  if (!peer || !Buffer.isBuffer(peer.raw) || peer.raw.length === 0) throw new AccessDenied('no client certificate');
  try {
    return readIdentity(peer.raw);
  } catch (err) {
    if (err instanceof BadParameter) throw new AccessDenied('client certificate carries no valid Ward identity');
    throw err;
  }
}

/** `sha256:<hex>` of the DER SubjectPublicKeyInfo: the CA pin a client checks on first contact. */
export function fingerprintSPKI(certPem: string | Buffer): string {
  const spki = new Uint8Array(parseCert(certPem).publicKey.rawData);
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

export function certExpiry(certPem: string | Buffer): Date {
  return parseCert(certPem).notAfter;
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

/** Accepts one PEM certificate (string or Buffer) or DER, with a size bound before any ASN.1 parsing. */
function parseCert(input: string | Buffer): x509.X509Certificate {
  // PEM is 4/3 of DER plus headers and line breaks.
  if (input.length > MAX_CERT_BYTES * 2) throw new BadParameter('certificate is too large');
  let der: Buffer;
  const text = typeof input === 'string' ? input : input.subarray(0, 64).toString('latin1');
  if (text.trimStart().startsWith('-----BEGIN')) {
    const pem = typeof input === 'string' ? input : input.toString('latin1');
    const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
    if (!m) throw new BadParameter('not a PEM certificate');
    der = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  } else if (typeof input === 'string') {
    throw new BadParameter('not a PEM certificate');
  } else {
    der = input;
  }
  if (der.length === 0 || der.length > MAX_CERT_BYTES) throw new BadParameter('certificate is empty or too large');
  try {
    return new x509.X509Certificate(new Uint8Array(der));
  } catch {
    throw new BadParameter('certificate is malformed');
  }
}

function assertP256(type: string | undefined, curve: string | undefined, what: string): void {
  if (type !== 'ec' || (curve !== 'prime256v1' && curve !== 'P-256')) throw new BadParameter(`${what} must be ECDSA P-256`);
}

/** 128 random bits; the library prefixes a zero octet when needed so the DER INTEGER stays positive. */
function randomSerial(): string {
  return randomBytes(16).toString('hex');
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

function decodeUTF8String(der: Uint8Array): string {
  if (der.length < 2 || der[0] !== 0x0c) throw new BadParameter('identity extension is not a UTF8String');
  let len = der[1]!;
  let offset = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // DER: definite, minimal length of at most 3 octets (64 KiB bound); no indefinite form.
    if (n === 0 || n > 3 || der.length < 2 + n || der[2] === 0) throw new BadParameter('identity extension has a bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[2 + i]!;
    if (len < 0x80) throw new BadParameter('identity extension has a bad length');
    offset = 2 + n;
  }
  if (offset + len !== der.length) throw new BadParameter('identity extension has a bad length');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(der.subarray(offset));
  } catch {
    throw new BadParameter('identity extension is not valid UTF-8');
  }
}
