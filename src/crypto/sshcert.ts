// OpenSSH certificates (PROTOCOL.certkeys): the codec and the checks every Ward target runs on a user
// or host certificate. Auth signs through an SSHSigner (the CA key stays in the KeyStore); nodes and
// proxies parse and verify. Only ssh-ed25519 and ecdsa-sha2-nistp256 certificates and CA keys exist here.
import crypto from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { AccessDenied, BadParameter } from '../api/errors.ts';
import { matchCIDRList, parseCIDRList } from './cidr.ts';
import {
  CERT_SUFFIX,
  blobType,
  isKeyType,
  publicKeyFromBlob,
  readPublicKeyFields,
  signSSH,
  sshPublicKeyBlob,
  verifySSHSignature,
} from './sshkeys.ts';
import { SSHReader, SSHWriter } from './sshwire.ts';

export type CertType = 'user' | 'host';

export interface SSHCertificate {
  keyType: string; // e.g. "ssh-ed25519-cert-v01@openssh.com"
  nonce: Buffer;
  publicKey: Buffer; // blob of the certified key
  serial: bigint;
  certType: CertType;
  keyId: string;
  principals: string[];
  validAfter: Date;
  validBefore: Date;
  criticalOptions: Record<string, string>;
  extensions: Record<string, string>;
  signatureKey: Buffer; // CA blob
  signature: Buffer;
  signed: Buffer; // the bytes the signature covers
  blob: Buffer; // whole cert
}

/** The CA key behind an interface: a KeyStore provides it, software or PKCS#11. */
export interface SSHSigner {
  publicKeyBlob: Buffer;
  sign(data: Buffer): Promise<Buffer>; // SSH signature blob
  /**
   * True when this process derives publicKeyBlob from the very key that signs (softwareSigner): its
   * signatures need no re-check. Any other signer (an HSM, a remote KMS) has each signature verified.
   */
  inProcess?: boolean;
}

export interface CertificateFields {
  publicKey: Buffer;
  serial: bigint;
  certType: CertType;
  keyId: string;
  principals: readonly string[];
  validAfter: Date;
  validBefore: Date;
  criticalOptions?: Record<string, string>;
  extensions?: Record<string, string>;
  nonce?: Buffer;
}

export interface VerifyOptions {
  trustedCAs: readonly Buffer[];
  now: Date;
  certType: CertType;
  principal?: string;
  sourceAddress?: string;
}

/** The uint64 0xffffffffffffffff ("forever") and every time past JavaScript's last Date map to this Date. */
export const FOREVER = new Date(8.64e15);
const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
const FOREVER_SECONDS = BigInt(FOREVER.getTime() / 1000);

// Limits on untrusted input. OpenSSH has no tighter ones; Ward's own certs stay far below them.
export const MAX_CERT_BYTES = 32 * 1024;
const MAX_NONCE = 256;
const MAX_KEY_ID = 1024;
const MAX_PRINCIPALS = 256;
const MAX_PRINCIPAL = 256;
const MAX_OPTIONS = 64;
const MAX_OPTION_NAME = 256;
const MAX_SIGNATURE = 1024;

const CERT_TYPE_CODES: Record<CertType, number> = { user: 1, host: 2 }; // SSH_CERT_TYPE_USER / _HOST

/**
 * Critical options Ward understands. PROTOCOL.certkeys "Critical options": a verifier must refuse a
 * certificate with any other. `verify-required` (OpenSSH 8.9) concerns FIDO keys, which Ward does not
 * support, so it is refused like any unknown option rather than silently not enforced.
 */
export const KNOWN_CRITICAL_OPTIONS: readonly string[] = ['force-command', 'source-address'];
// PROTOCOL.certkeys "Extensions": these are flags, their data field is empty (zero bytes, not an empty string).
const FLAG_EXTENSIONS = new Set([
  'no-touch-required',
  'permit-X11-forwarding',
  'permit-agent-forwarding',
  'permit-port-forwarding',
  'permit-pty',
  'permit-user-rc',
]);

export function softwareSigner(key: crypto.KeyObject): SSHSigner {
  const publicKeyBlob = sshPublicKeyBlob(key);
  return { publicKeyBlob, sign: async (data) => signSSH(key, data), inProcess: true };
}

function dateToUint64(d: Date, what: string): bigint {
  if (!(d instanceof Date) || Number.isNaN(d.getTime()) || d.getTime() < 0) throw new BadParameter(`invalid ${what}`);
  if (d.getTime() >= FOREVER.getTime()) return UINT64_MAX;
  return BigInt(Math.floor(d.getTime() / 1000));
}

function uint64ToDate(seconds: bigint): Date {
  return seconds >= FOREVER_SECONDS ? new Date(FOREVER) : new Date(Number(seconds) * 1000);
}

function checkText(s: unknown, max: number, what: string): string {
  if (typeof s !== 'string' || s.length === 0 || Buffer.byteLength(s) > max || s.includes('\0')) {
    throw new BadParameter(`invalid ${what}`);
  }
  return s;
}

/** Sets an own property even for names like "__proto__", which plain assignment would not create. */
function setOwn(map: Record<string, string>, name: string, value: string): void {
  Object.defineProperty(map, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * PROTOCOL.certkeys "Critical options" / "Extensions": tuples of string name, string data, lexically
 * ordered by name, each name once. A value is carried as a string inside data; a flag (value '') has
 * empty data.
 */
function encodeOptions(map: Record<string, string>, critical: boolean): Buffer {
  const what = critical ? 'critical option' : 'extension';
  const names = Object.keys(map).map((n) => Buffer.from(checkText(n, MAX_OPTION_NAME, `${what} name`)));
  if (names.length > MAX_OPTIONS) throw new BadParameter(`too many ${what}s`);
  names.sort(Buffer.compare);
  const w = new SSHWriter();
  for (const raw of names) {
    const name = raw.toString();
    const value = map[name];
    if (typeof value !== 'string' || value.includes('\0')) throw new BadParameter(`invalid value for ${what} ${name}`);
    const shapeError = optionShapeError(name, value !== '', critical);
    if (shapeError) throw new BadParameter(shapeError);
    if (critical && name === 'source-address') parseCIDRList(value);
    w.string(raw).string(value === '' ? Buffer.alloc(0) : new SSHWriter().string(value).toBuffer());
  }
  return w.toBuffer();
}

// Known options have a fixed shape (OpenSSH refuses a certificate that breaks it): flags carry no
// data, force-command and source-address carry a non-empty string. Returns why `name` is malformed.
function optionShapeError(name: string, hasData: boolean, critical: boolean): string | null {
  if (!critical && FLAG_EXTENSIONS.has(name) && hasData) return `extension ${name} is a flag and takes no data`;
  if (critical && KNOWN_CRITICAL_OPTIONS.includes(name) && !hasData) return `critical option ${name} needs a value`;
  return null;
}

function decodeOptions(raw: Buffer, critical: boolean): Record<string, string> {
  const what = critical ? 'critical options' : 'extensions';
  const r = new SSHReader(raw, `certificate ${what}`);
  const out: Record<string, string> = {};
  let previous: Buffer | null = null;
  for (let count = 0; r.remaining > 0; count++) {
    if (count >= MAX_OPTIONS) r.fail(`more than ${MAX_OPTIONS} entries`);
    const nameRaw = r.string(MAX_OPTION_NAME);
    const name = r.decodeText(nameRaw);
    if (name === '') r.fail('empty name');
    // Strictly increasing order rejects duplicates too: two values for one name would be ambiguous.
    if (previous !== null && Buffer.compare(previous, nameRaw) >= 0) r.fail('names not unique and lexically ordered');
    previous = nameRaw;
    const data = r.string();
    let value = '';
    if (data.length > 0) {
      const inner = new SSHReader(data, `certificate ${what}`);
      value = inner.text(data.length);
      inner.end();
    }
    const shapeError = optionShapeError(name, data.length > 0, critical);
    if (shapeError) r.fail(shapeError);
    setOwn(out, name, value);
  }
  return out;
}

function encodePrincipals(principals: readonly string[]): Buffer {
  if (!Array.isArray(principals) || principals.length > MAX_PRINCIPALS) throw new BadParameter('invalid principals');
  const w = new SSHWriter();
  for (const p of principals) w.string(checkText(p, MAX_PRINCIPAL, 'principal'));
  return w.toBuffer();
}

function decodePrincipals(raw: Buffer): string[] {
  const r = new SSHReader(raw, 'certificate principals');
  const out: string[] = [];
  while (r.remaining > 0) {
    if (out.length >= MAX_PRINCIPALS) r.fail(`more than ${MAX_PRINCIPALS} principals`);
    const p = r.text(MAX_PRINCIPAL);
    if (p === '') r.fail('empty principal');
    out.push(p);
  }
  return out;
}

/** Signs a certificate for `fields.publicKey` with the CA behind `ca`; returns the certificate blob. */
export async function signCertificate(fields: CertificateFields, ca: SSHSigner): Promise<Buffer> {
  publicKeyFromBlob(fields.publicKey); // a supported, well-formed key (BadParameter otherwise)
  // An in-process signer's blob was derived from the very key that signs (softwareSigner), so it is well formed.
  if (!ca.inProcess) publicKeyFromBlob(ca.publicKeyBlob);
  const keyType = blobType(fields.publicKey);
  // The certificate repeats the key's fields after its type name (PROTOCOL.certkeys "New public key formats").
  const keyFields = fields.publicKey.subarray(4 + Buffer.byteLength(keyType));
  if (typeof fields.serial !== 'bigint' || fields.serial < 0n || fields.serial > UINT64_MAX) {
    throw new BadParameter('serial must be a uint64');
  }
  if (!Object.hasOwn(CERT_TYPE_CODES, fields.certType)) throw new BadParameter('certType must be user or host');
  const typeCode = CERT_TYPE_CODES[fields.certType];
  const validAfter = dateToUint64(fields.validAfter, 'validAfter');
  const validBefore = dateToUint64(fields.validBefore, 'validBefore');
  if (validAfter >= validBefore) throw new BadParameter('validAfter must be before validBefore');
  const nonce = fields.nonce ?? crypto.randomBytes(32);
  if (!Buffer.isBuffer(nonce) || nonce.length < 16 || nonce.length > MAX_NONCE) {
    throw new BadParameter('nonce must be 16 to 256 bytes'); // it exists to defeat chosen-prefix collisions
  }
  const criticalOptions = fields.criticalOptions ?? {};
  if (fields.certType === 'host' && Object.keys(criticalOptions).length > 0) {
    throw new BadParameter('no critical options are defined for host certificates');
  }
  const signed = new SSHWriter()
    .string(keyType + CERT_SUFFIX)
    .string(nonce)
    .raw(keyFields)
    .uint64(fields.serial)
    .uint32(typeCode)
    .string(checkText(fields.keyId, MAX_KEY_ID, 'keyId'))
    .string(encodePrincipals(fields.principals))
    .uint64(validAfter)
    .uint64(validBefore)
    .string(encodeOptions(criticalOptions, true))
    .string(encodeOptions(fields.extensions ?? {}, false))
    .string('') // reserved
    .string(ca.publicKeyBlob)
    .toBuffer();
  if (signed.length + 4 + MAX_SIGNATURE > MAX_CERT_BYTES) throw new BadParameter('certificate too large');
  const signature = await ca.sign(signed);
  // A misbehaving signer (an HSM returning another format, a key mix-up) must not yield a cert no one accepts.
  // (Verifying a P-256 signature cost ~70 us of each ~1.4 ms API login, so the in-process signer skips it.)
  if (!Buffer.isBuffer(signature) || (!ca.inProcess && !verifySSHSignature(ca.publicKeyBlob, signed, signature))) {
    throw new Error('CA signer returned a signature that does not verify');
  }
  return Buffer.concat([signed, new SSHWriter().string(signature).toBuffer()]);
}

/** Decodes a certificate blob with strict bounds checks; BadParameter on any malformed or unsupported input. */
export function parseCertificate(input: Buffer): SSHCertificate {
  if (!(input instanceof Uint8Array)) throw new BadParameter('certificate must be a Buffer');
  if (input.length > MAX_CERT_BYTES) throw new BadParameter('certificate too large');
  const blob = Buffer.from(input); // a private copy: later changes to the caller's buffer cannot alter it
  const r = new SSHReader(blob, 'certificate');
  const keyType = r.text(64);
  const baseType = keyType.slice(0, -CERT_SUFFIX.length);
  if (!keyType.endsWith(CERT_SUFFIX) || !isKeyType(baseType)) throw new BadParameter('unsupported key type');
  const nonce = r.string(MAX_NONCE);
  const publicKey = readPublicKeyFields(r, baseType);
  publicKeyFromBlob(publicKey); // rejects an off-curve point
  const serial = r.uint64();
  const typeCode = r.uint32();
  const certType = typeCode === 1 ? 'user' : typeCode === 2 ? 'host' : r.fail(`unknown certificate type ${typeCode}`);
  const keyId = r.text(MAX_KEY_ID);
  const principals = decodePrincipals(r.string());
  const validAfter = uint64ToDate(r.uint64());
  const validBefore = uint64ToDate(r.uint64());
  const criticalOptions = decodeOptions(r.string(), true);
  const extensions = decodeOptions(r.string(), false);
  r.string(); // reserved: "ignored in this version of the protocol", but covered by the signature
  const signatureKey = r.string(1024);
  // "Chained" certificates are not supported: the CA key must be a plain key of a supported type.
  publicKeyFromBlob(signatureKey);
  const signedLength = r.position; // the signature covers everything up to and including the signature key
  const signature = r.string(MAX_SIGNATURE);
  r.end();
  return {
    keyType,
    nonce,
    publicKey,
    serial,
    certType,
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    signatureKey,
    signature,
    signed: blob.subarray(0, signedLength),
    blob,
  };
}

function deny(reason: string): never {
  throw new AccessDenied(`certificate refused: ${reason}`);
}

/**
 * Throws AccessDenied unless `cert` is signed by one of `trustedCAs`, is of `certType`, is valid at
 * `now`, lists `principal` (if given), is presented from `sourceAddress` (if restricted), and carries
 * no critical option Ward does not enforce. The caller still applies force-command and the extensions.
 */
export function verifyCertificate(cert: SSHCertificate, opts: VerifyOptions): void {
  // Decide on the signed bytes, not on fields a caller could have edited after parsing.
  let parsed: SSHCertificate;
  try {
    parsed = parseCertificate(cert.blob);
  } catch {
    return deny('malformed certificate');
  }
  if (!isDeepStrictEqual(parsed, cert)) deny('certificate fields do not match its signed bytes');
  if (!opts.trustedCAs.some((ca) => Buffer.isBuffer(ca) && ca.equals(parsed.signatureKey))) {
    deny('not signed by a trusted certificate authority');
  }
  if (!verifySSHSignature(parsed.signatureKey, parsed.signed, parsed.signature)) deny('invalid CA signature');
  if (parsed.certType !== opts.certType)
    deny(`expected a ${opts.certType} certificate, got a ${parsed.certType} certificate`);

  // PROTOCOL.certkeys: valid after <= current time < valid before, in whole seconds.
  const now = Math.floor(opts.now.getTime() / 1000);
  if (!Number.isFinite(now)) deny('invalid verification time');
  if (now < Math.floor(parsed.validAfter.getTime() / 1000)) deny('not yet valid');
  if (now >= Math.floor(parsed.validBefore.getTime() / 1000)) deny('expired');

  if (opts.principal !== undefined) {
    // An empty list means "any principal" in the spec; Ward refuses such wildcards, as sshd does for users.
    if (parsed.principals.length === 0) deny('certificate lists no principals');
    if (!parsed.principals.includes(opts.principal)) deny(`principal "${opts.principal}" is not listed`);
  }

  const options = Object.keys(parsed.criticalOptions);
  // "No critical options are defined for host certificates at present"; the OpenSSH client refuses them too.
  if (parsed.certType === 'host' && options.length > 0) deny('host certificate carries critical options');
  for (const name of options) {
    if (!KNOWN_CRITICAL_OPTIONS.includes(name)) deny(`unsupported critical option "${name}"`);
  }
  if (Object.hasOwn(parsed.criticalOptions, 'source-address')) {
    const list = parsed.criticalOptions['source-address']!;
    if (opts.sourceAddress === undefined) deny('restricted by source-address but the client address is unknown');
    let allowed = false;
    try {
      allowed = matchCIDRList(opts.sourceAddress, list);
    } catch {
      deny('malformed source-address');
    }
    if (!allowed) deny(`source address ${opts.sourceAddress} is not allowed`);
  }
}
