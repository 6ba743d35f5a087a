// OpenSSH keys for Ward: public key blobs (RFC 4253 6.6, RFC 5656 3.1, RFC 8709), authorized_keys lines,
// SHA256 fingerprints, the openssh-key-v1 private key file (PROTOCOL.key) and SSH signature blobs.
// Only Ed25519 and ECDSA P-256 exist here (DESIGN.md); anything else is refused as BadParameter.
import crypto from 'node:crypto';
import { BadParameter } from '../api/errors.ts';
import { SSHReader, SSHWriter, padStart } from './sshwire.ts';

export const ED25519 = 'ssh-ed25519';
export const ECDSA_P256 = 'ecdsa-sha2-nistp256';
export type SSHKeyType = typeof ED25519 | typeof ECDSA_P256;
export const KEY_TYPES: readonly SSHKeyType[] = [ED25519, ECDSA_P256];
/** PROTOCOL.certkeys: each supported key type has a certificate type named `<type>-cert-v01@openssh.com`. */
export const CERT_SUFFIX = '-cert-v01@openssh.com';

/** Longest authorized_keys line accepted: a certificate of MAX_CERT_BYTES (32 KiB) in base64 plus a comment. */
export const MAX_AUTHORIZED_KEY_LINE = 48 * 1024;
const MAX_COMMENT = 1024;
const MAX_PRIVATE_KEY_PEM = 8 * 1024;
const NISTP256 = 'nistp256';
const AUTH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
const PEM_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const PEM_END = '-----END OPENSSH PRIVATE KEY-----';
// PKCS#8 prefix for an Ed25519 private key (RFC 8410): lets us build the key from its 32-byte seed alone.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function isKeyType(name: string): name is SSHKeyType {
  return (KEY_TYPES as readonly string[]).includes(name);
}

/** The SSH algorithm name of a node:crypto key, or BadParameter for anything but Ed25519 / P-256. */
export function sshKeyType(key: crypto.KeyObject): SSHKeyType {
  if (key.asymmetricKeyType === 'ed25519') return ED25519;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return ECDSA_P256;
  throw new BadParameter('unsupported key type');
}

/** Wire blob of the public half of `key` (public or private KeyObject). */
export function sshPublicKeyBlob(key: crypto.KeyObject): Buffer {
  const type = sshKeyType(key);
  // RFC 5656 3.1: for P-256, string identifier "nistp256", string Q (SEC1 uncompressed point).
  return plainKeyBlob(type, publicPoint(key, type));
}

// The raw key material is read from DER, whose layout for these two key types is fixed, not from a JWK
// export: on Node 20.20 (OpenSSL 3.0) JWK exports of freshly generated keys in a loop hung the process on a
// futex now and then (a bench generating 17,000 login key pairs hung in most runs; DER exports never did).
/** RFC 8410 / RFC 5480: the SubjectPublicKeyInfo header before the raw key. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
export const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
/** RFC 5915 ECPrivateKey as Node writes it for P-256: SEQUENCE (short form), version 1, then d in 32 bytes. */
const P256_SEC1_D_PREFIX = Buffer.from('020101' + '0420', 'hex');

function afterPrefix(der: Buffer, prefix: Buffer, size: number, what: string): Buffer {
  if (der.length !== prefix.length + size || !der.subarray(0, prefix.length).equals(prefix)) {
    throw new BadParameter(`unexpected ${what} encoding`);
  }
  return der.subarray(prefix.length);
}

/** The public point of a key: the 32-byte Ed25519 pk, or the 65-byte uncompressed P-256 Q. */
function publicPoint(key: crypto.KeyObject, type: SSHKeyType): Buffer {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  const spki = pub.export({ type: 'spki', format: 'der' });
  return type === ED25519
    ? afterPrefix(spki, ED25519_SPKI_PREFIX, 32, 'Ed25519 public key')
    : afterPrefix(spki, P256_SPKI_PREFIX, 65, 'P-256 public key');
}

/** The private half: the 32-byte Ed25519 seed, or the 32-byte P-256 scalar d. */
function privateScalar(key: crypto.KeyObject, type: SSHKeyType): Buffer {
  if (type === ED25519)
    return afterPrefix(key.export({ type: 'pkcs8', format: 'der' }), ED25519_PKCS8_PREFIX, 32, 'Ed25519 private key');
  const sec1 = key.export({ type: 'sec1', format: 'der' });
  if (
    sec1[0] !== 0x30 ||
    sec1[1]! >= 0x80 ||
    !sec1.subarray(2, 2 + P256_SEC1_D_PREFIX.length).equals(P256_SEC1_D_PREFIX)
  ) {
    throw new BadParameter('unexpected P-256 private key encoding');
  }
  const start = 2 + P256_SEC1_D_PREFIX.length;
  return sec1.subarray(start, start + 32);
}

// The public point as a wire blob carries it: the 32-byte Ed25519 pk, or the 65-byte uncompressed P-256 Q.
function readKeyPoint(r: SSHReader, type: string): Buffer {
  if (type === ED25519) {
    const pk = r.string(32);
    if (pk.length !== 32) r.fail('Ed25519 public key must be 32 bytes');
    return pk;
  }
  if (type === ECDSA_P256) {
    // RFC 5656 3.1: the curve identifier must agree with the algorithm name.
    if (r.text(16) !== NISTP256) r.fail('ECDSA curve does not match the key type');
    const q = r.string(65);
    if (q.length !== 65 || q[0] !== 4) r.fail('ECDSA point must be 65 bytes, uncompressed');
    return q;
  }
  throw new BadParameter('unsupported key type');
}

function plainKeyBlob(type: SSHKeyType, point: Buffer): Buffer {
  const w = new SSHWriter().string(type);
  if (type === ECDSA_P256) w.string(NISTP256);
  return w.string(point).toBuffer();
}

/**
 * Reads the key-specific fields that follow the type name, for a plain key blob or (PROTOCOL.certkeys)
 * the fields after the nonce in a certificate, and returns the equivalent plain key blob.
 */
export function readPublicKeyFields(r: SSHReader, type: string): Buffer {
  const point = readKeyPoint(r, type);
  return plainKeyBlob(type as SSHKeyType, point);
}

/** Parses a public key blob into a KeyObject (for verification); refuses off-curve points. */
export function publicKeyFromBlob(blob: Buffer): crypto.KeyObject {
  const r = new SSHReader(blob, 'public key');
  const type = r.text(64);
  const point = readKeyPoint(r, type);
  r.end();
  try {
    if (type === ED25519) {
      return crypto.createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: point.toString('base64url') },
        format: 'jwk',
      });
    }
    const [x, y] = [point.subarray(1, 33), point.subarray(33)].map((b) => b.toString('base64url'));
    return crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: x!, y: y! }, format: 'jwk' });
  } catch {
    throw new BadParameter('malformed public key: not a valid point');
  }
}

/** The key type name every SSH blob (key, cert, signature) starts with. */
export function blobType(blob: Buffer): string {
  return new SSHReader(blob, 'key blob').text(64);
}

function checkComment(comment: string): string {
  // A comment ends the line: a newline in it would inject a second authorized_keys entry.
  if (comment.length > MAX_COMMENT || /[\x00-\x1f\x7f]/.test(comment)) throw new BadParameter('invalid key comment');
  return comment;
}

function isSupportedBlobType(type: string): boolean {
  return isKeyType(type) || (type.endsWith(CERT_SUFFIX) && isKeyType(type.slice(0, -CERT_SUFFIX.length)));
}

/** "ssh-ed25519 AAAA... comment": the authorized_keys / *.pub form of a key or certificate blob. */
export function formatAuthorizedKey(blob: Buffer, comment = ''): string {
  const type = blobType(blob);
  if (!isSupportedBlobType(type)) throw new BadParameter('unsupported key type');
  const line = `${type} ${blob.toString('base64')}`;
  return checkComment(comment) === '' ? line : `${line} ${comment}`;
}

function decodeBase64Strict(text: string, what: string): Buffer {
  // Canonical base64 only: a lenient decoder would let two different lines name the same key.
  const buf = Buffer.from(text, 'base64');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || buf.toString('base64') !== text) {
    throw new BadParameter(`malformed ${what}: invalid base64`);
  }
  return buf;
}

/**
 * Parses "type base64 [comment]" (no authorized_keys options). The blob's own type name must equal the
 * line's; the caller decodes the blob further with publicKeyFromBlob or parseCertificate.
 */
export function parseAuthorizedKey(line: string): { type: string; blob: Buffer; comment: string } {
  if (typeof line !== 'string' || line.length > MAX_AUTHORIZED_KEY_LINE) throw new BadParameter('key line too long');
  const m = /^([!-~]+)[ \t]+([A-Za-z0-9+/=]+)(?:[ \t]+(.*))?$/.exec(line.trim());
  if (!m) throw new BadParameter('malformed authorized key line');
  const type = m[1]!;
  if (!isSupportedBlobType(type)) throw new BadParameter('unsupported key type');
  const blob = decodeBase64Strict(m[2]!, 'authorized key');
  if (blobType(blob) !== type) throw new BadParameter('malformed authorized key: type name does not match the blob');
  return { type, blob, comment: checkComment(m[3]?.trim() ?? '') };
}

/** "SHA256:<unpadded base64>", exactly as `ssh-keygen -lf` prints (for a cert, pass the certified key blob). */
export function fingerprintSHA256(blob: Buffer): string {
  return 'SHA256:' + crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

function requirePrivate(key: crypto.KeyObject): void {
  if (key.type !== 'private') throw new BadParameter('a private key is required');
}

/** The unencrypted openssh-key-v1 file (PROTOCOL.key), as `ssh-keygen -N ''` writes it. */
export function formatOpenSSHPrivateKey(key: crypto.KeyObject, comment = ''): string {
  requirePrivate(key);
  const type = sshKeyType(key);
  const point = publicPoint(key, type);
  const publicBlob = plainKeyBlob(type, point);
  const secret = privateScalar(key, type);
  // PROTOCOL.key 3: two equal random check integers let a reader detect a wrong passphrase.
  const check = crypto.randomBytes(4);
  const w = new SSHWriter().raw(check).raw(check);
  if (type === ED25519) {
    // Private key encoding as for the SSH agent (draft-miller-ssh-agent): pk, then seed || pk.
    w.string(ED25519)
      .string(point)
      .string(Buffer.concat([secret, point]));
  } else {
    w.string(ECDSA_P256).string(NISTP256).string(point).mpint(secret);
  }
  w.string(checkComment(comment));
  // Pad with 1, 2, 3... to the block size of cipher "none" (8).
  const body = w.toBuffer();
  const pad = (8 - (body.length % 8)) % 8;
  const padding = Buffer.from(Array.from({ length: pad }, (_, i) => i + 1));
  const file = new SSHWriter()
    .raw(AUTH_MAGIC)
    .string('none')
    .string('none')
    .string('')
    .uint32(1)
    .string(publicBlob)
    .string(Buffer.concat([body, padding]))
    .toBuffer();
  const lines = file.toString('base64').match(/.{1,70}/g) ?? [];
  return `${PEM_BEGIN}\n${lines.join('\n')}\n${PEM_END}\n`;
}

function decodePrivateKeyArmor(pem: string): Buffer {
  if (typeof pem !== 'string' || pem.length > MAX_PRIVATE_KEY_PEM) throw new BadParameter('private key file too large');
  const text = pem.trim();
  if (!text.startsWith(PEM_BEGIN) || !text.endsWith(PEM_END)) {
    throw new BadParameter('not an OpenSSH private key (expected BEGIN OPENSSH PRIVATE KEY)');
  }
  const body = text.slice(PEM_BEGIN.length, text.length - PEM_END.length).replace(/\s+/g, '');
  return decodeBase64Strict(body, 'OpenSSH private key');
}

function ed25519FromSeed(seed: Buffer): crypto.KeyObject {
  return crypto.createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function readPrivateKey(p: SSHReader, type: string): crypto.KeyObject {
  if (type === ED25519) {
    const pk = p.string(32);
    const sk = p.string(64);
    if (pk.length !== 32 || sk.length !== 64 || !sk.subarray(32).equals(pk)) p.fail('inconsistent Ed25519 key');
    return ed25519FromSeed(sk.subarray(0, 32));
  }
  if (type === ECDSA_P256) {
    if (p.text(16) !== NISTP256) p.fail('ECDSA curve does not match the key type');
    const q = p.string(65);
    const d = padStart(p.mpint(32), 32);
    // Derive Q from d rather than trusting the stored point: JWK import does not check that they agree.
    let derived: Buffer;
    try {
      const ecdh = crypto.createECDH('prime256v1');
      ecdh.setPrivateKey(d);
      derived = ecdh.getPublicKey();
    } catch {
      return p.fail('invalid ECDSA private scalar');
    }
    if (!derived.equals(q)) p.fail('inconsistent ECDSA key');
    const [x, y] = [q.subarray(1, 33), q.subarray(33)].map((b) => b.toString('base64url'));
    return crypto.createPrivateKey({
      key: { kty: 'EC', crv: 'P-256', d: d.toString('base64url'), x: x!, y: y! },
      format: 'jwk',
    });
  }
  throw new BadParameter('unsupported key type');
}

/** Parses an unencrypted openssh-key-v1 file holding one Ed25519 or P-256 key. */
export function parseOpenSSHPrivateKey(pem: string): crypto.KeyObject {
  const r = new SSHReader(decodePrivateKeyArmor(pem), 'OpenSSH private key');
  if (!r.bytes(AUTH_MAGIC.length).equals(AUTH_MAGIC)) r.fail('bad magic');
  const cipher = r.text(64);
  const kdf = r.text(64);
  const kdfOptions = r.string(1024);
  if (cipher !== 'none' || kdf !== 'none') throw new BadParameter('encrypted OpenSSH private keys are not supported');
  if (kdfOptions.length !== 0) r.fail('KDF "none" takes no options');
  if (r.uint32() !== 1) throw new BadParameter('OpenSSH private key files must hold exactly one key');
  const publicBlob = r.string(1024);
  const section = r.string(4096);
  r.end();
  if (section.length % 8 !== 0) r.fail('private section is not padded to the block size');
  const p = new SSHReader(section, 'OpenSSH private key');
  // biome-ignore lint/suspicious/noSelfCompare: two reads, the key's two check integers, which must match
  if (p.uint32() !== p.uint32()) p.fail('check integers differ');
  const key = readPrivateKey(p, p.text(64));
  p.string(MAX_COMMENT);
  const padding = p.bytes(p.remaining);
  if (padding.some((b, i) => b !== i + 1)) p.fail('bad padding');
  if (!sshPublicKeyBlob(key).equals(publicBlob)) p.fail('public key does not match the private key');
  return key;
}

/** An SSH signature blob (RFC 4253 6.6): string algorithm, string signature; ECDSA per RFC 5656 3.1.2. */
export function signSSH(key: crypto.KeyObject, data: Buffer): Buffer {
  requirePrivate(key);
  const type = sshKeyType(key);
  if (type === ED25519) {
    return new SSHWriter()
      .string(ED25519)
      .string(crypto.sign(null, data, key))
      .toBuffer();
  }
  const rs = crypto.sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
  const inner = new SSHWriter().mpint(rs.subarray(0, 32)).mpint(rs.subarray(32)).toBuffer();
  return new SSHWriter().string(ECDSA_P256).string(inner).toBuffer();
}

/**
 * True only for a well-formed signature blob, of the algorithm matching the key, that verifies.
 * A malformed signature is simply not valid (false); a malformed public key is the caller's error.
 */
export function verifySSHSignature(publicBlob: Buffer, data: Buffer, signatureBlob: Buffer): boolean {
  const key = publicKeyFromBlob(publicBlob);
  const type = sshKeyType(key);
  try {
    const r = new SSHReader(signatureBlob, 'signature');
    if (r.text(64) !== type) return false;
    const sig = r.string(128);
    r.end();
    if (type === ED25519) return sig.length === 64 && crypto.verify(null, data, key, sig);
    const s = new SSHReader(sig, 'ECDSA signature');
    const p1363 = Buffer.concat([padStart(s.mpint(32), 32), padStart(s.mpint(32), 32)]);
    s.end();
    return crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, p1363);
  } catch (err) {
    if (err instanceof BadParameter) return false;
    throw err;
  }
}
