// What a client (and every server on every connection) reads from a certificate: the Ward identity in its
// private extension, the CA pin and the expiry. A walk over the DER, without an X.509 library: loading
// @peculiar/x509 took 150-300 ms, paid by `wsh proxy ssh` on every ssh connection, and its full parse was ~7%
// of the auth server's CPU per API call. Nothing here decides trust: verifyChain or the TLS handshake does.
import { createHash } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { isCalendarDate } from '../time/clock.ts';
import { AccessDenied, BadParameter } from './errors.ts';
import * as der from './der.ts';

/** Private OID of the extension that holds the Ward identity as JSON (a DER UTF8String). */
export const IDENTITY_OID = '1.3.9999.7.1';
/** Upper bound for the identity extension and, with room for the rest, for a whole certificate. */
export const MAX_IDENTITY_BYTES = 64 * 1024;
const MAX_CERT_BYTES = 2 * MAX_IDENTITY_BYTES;

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

// The identity is checked by hand rather than with zod: every Ward client reads the server's certificate, and
// loading zod was ~15 ms of each `wsh` start (`wsh proxy ssh` runs on every ssh connection). certinfo.test.ts
// holds the zod schema this replaced and checks that the two agree.
const MAX_NAME = 255;
const MAX_TRAIT_VALUE = 4096;
const IDENTITY_KEYS = new Set([
  'username',
  'roles',
  'logins',
  'traits',
  'cluster',
  'expires',
  'kind',
  'hostId',
  'systemRoles',
  'routeToCluster',
]);
/** RFC 3339 in UTC with seconds and any fraction: what zod's `z.iso.datetime()` accepts (the date is checked apart). */
const ISO_UTC = /^(\d{4})-(\d{2})-(\d{2})T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?Z$/;

function invalid(path: string, message: string): never {
  throw new BadParameter(`invalid identity: ${path}: ${message}`);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A user, role, login, cluster or host name as an identity carries it: 1-255 characters. */
export function isIdentityName(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= MAX_NAME;
}

function checkName(v: unknown, path: string): string {
  if (!isIdentityName(v)) invalid(path, `expected a name of 1-${MAX_NAME} characters`);
  return v;
}

function checkNames(v: unknown, path: string, max: number): string[] {
  if (!Array.isArray(v)) invalid(path, 'expected an array');
  if (v.length > max) invalid(path, `more than ${max} entries`);
  // A loop rather than map, which would skip the holes of a sparse array instead of refusing them.
  const names: string[] = [];
  for (let i = 0; i < v.length; i++) names.push(checkName(v[i], `${path}.${i}`));
  return names;
}

function checkTraits(v: unknown): Record<string, string[]> {
  if (!isRecord(v)) invalid('traits', 'expected an object');
  const out: Record<string, string[]> = {};
  for (const [key, values] of Object.entries(v)) {
    if (!isIdentityName(key) || key === '__proto__') invalid('traits', `invalid trait name ${JSON.stringify(key)}`);
    if (!Array.isArray(values) || values.length > 1000)
      invalid(`traits.${key}`, 'expected an array of at most 1000 values');
    for (const x of values)
      if (typeof x !== 'string' || x.length > MAX_TRAIT_VALUE)
        invalid(`traits.${key}`, `expected strings of at most ${MAX_TRAIT_VALUE} characters`);
    out[key] = [...(values as string[])];
  }
  return out;
}

function checkExpires(v: unknown): string {
  const m = typeof v === 'string' ? ISO_UTC.exec(v) : null;
  if (!m || !isCalendarDate(Number(m[1]), Number(m[2]), Number(m[3])))
    invalid('expires', 'expected an RFC 3339 time in UTC');
  return v as string;
}

/** Checks an identity (a certificate's, or one about to be signed) and returns a copy holding only its fields. */
export function parseIdentity(value: unknown): Identity {
  if (!isRecord(value)) invalid('(root)', 'expected an object');
  // Strict: a certificate whose identity has fields this build does not know is refused rather than half-read.
  for (const key of Object.keys(value))
    if (!IDENTITY_KEYS.has(key)) invalid('(root)', `unknown field ${JSON.stringify(key)}`);
  const { traits, hostId, systemRoles, routeToCluster, kind } = value;
  if (kind !== 'user' && kind !== 'host') invalid('kind', 'expected "user" or "host"');
  const identity: Identity = {
    username: checkName(value.username, 'username'),
    roles: checkNames(value.roles, 'roles', 1000),
    logins: checkNames(value.logins, 'logins', 1000),
    ...(traits !== undefined ? { traits: checkTraits(traits) } : {}),
    cluster: checkName(value.cluster, 'cluster'),
    expires: checkExpires(value.expires),
    kind,
    ...(hostId !== undefined ? { hostId: checkName(hostId, 'hostId') } : {}),
    ...(systemRoles !== undefined ? { systemRoles: checkNames(systemRoles, 'systemRoles', 100) } : {}),
    ...(routeToCluster !== undefined ? { routeToCluster: checkName(routeToCluster, 'routeToCluster') } : {}),
  };
  if (kind === 'host' && hostId === undefined) invalid('(root)', 'a host identity needs a hostId');
  return identity;
}

/**
 * Reads the Ward identity of a certificate (PEM or DER). It does NOT check who signed it: call it only on a
 * certificate that verifyChain or the TLS handshake has already accepted.
 */
export function readIdentity(cert: string | Buffer): Identity {
  // A walk to the one extension, not a full parse: this runs on every Auth API call (identityFromPeerCert),
  // where @peculiar/x509's parse was ~7% of the server's CPU. It is as strict as DER about what it reads.
  const exts = identityExtensions(certDer(cert));
  // Two identity extensions would let the reader and the auditor disagree about who this is.
  if (exts.length !== 1)
    throw new BadParameter(exts.length === 0 ? 'certificate carries no Ward identity' : 'duplicate identity extension');
  const value = exts[0]!;
  if (value.length > MAX_IDENTITY_BYTES) throw new BadParameter('identity extension is too large');
  let json: unknown;
  try {
    // A `__proto__` key would not become a field of the parsed object: refuse it, so what was signed is what is read.
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
  const buf = certDer(certPem);
  const spki = tbsFields(buf).spki;
  return `sha256:${createHash('sha256').update(buf.subarray(spki.headerStart, spki.end)).digest('hex')}`;
}

/** The certificate's notAfter. */
export function certExpiry(certPem: string | Buffer): Date {
  return new Date(certValidity(certPem).notAfter);
}

/**
 * The certificate's validity, in ms since the epoch (RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ, 50-99 being 19xx,
 * or GeneralizedTime).
 */
export function certValidity(certPem: string | Buffer): { notBefore: number; notAfter: number } {
  const buf = certDer(certPem);
  const [notBefore, notAfter] = der.children(buf, tbsFields(buf).validity);
  if (!notBefore || !notAfter) throw new BadParameter('certificate is malformed');
  return { notBefore: certTime(buf, notBefore), notAfter: certTime(buf, notAfter) };
}

function certTime(buf: Buffer, field: der.Element): number {
  const text = buf.subarray(field.start, field.end).toString('latin1');
  const m =
    field.tag === 0x17
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : field.tag === 0x18
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
        : null;
  if (!m) throw new BadParameter('certificate is malformed');
  let year = Number(m[1]);
  if (field.tag === 0x17) year += year < 50 ? 2000 : 1900;
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** Accepts one PEM certificate (string or Buffer) or DER, with a size bound before any ASN.1 parsing. */
export function certDer(input: string | Buffer): Buffer {
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
  return der;
}

interface Field extends der.Element {
  /** Where the element's tag is: the SPKI pin hashes the whole element. */
  headerStart: number;
}

/**
 * The fields of a certificate's TBSCertificate, found by walking its DER: Certificate ::= SEQUENCE {
 * tbsCertificate, signatureAlgorithm, signatureValue }; TBSCertificate ::= SEQUENCE { [0] version OPTIONAL,
 * serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, [1] [2] OPTIONAL, [3] extensions
 * OPTIONAL } (RFC 5280 4.1). Anything that is not that shape is "certificate is malformed".
 */
function tbsFields(buf: Buffer): { validity: Field; spki: Field; extensions?: Field } {
  const malformed = () => new BadParameter('certificate is malformed');
  try {
    const cert = der.readElement(buf, 0);
    if (cert.tag !== 0x30 || cert.end !== buf.length) throw malformed();
    const [tbs, alg, sig, ...extra] = der.children(buf, cert);
    if (!tbs || tbs.tag !== 0x30 || alg?.tag !== 0x30 || sig?.tag !== 0x03 || extra.length) throw malformed();
    const fields: Field[] = [];
    for (let at = tbs.start; at < tbs.end; ) {
      const e = der.readElement(buf, at, tbs.end);
      fields.push({ ...e, headerStart: at });
      at = e.end;
    }
    const first = fields[0]?.tag === 0xa0 ? 1 : 0;
    const fixed = fields.slice(first, first + 6);
    if (fixed.length !== 6 || fixed[0]!.tag !== 0x02 || fixed.slice(1).some((f) => f.tag !== 0x30)) throw malformed();
    return { validity: fixed[3]!, spki: fixed[5]!, extensions: fields.slice(first + 6).find((f) => f.tag === 0xa3) };
  } catch (err) {
    if (err instanceof BadParameter) throw malformed();
    throw err;
  }
}

const IDENTITY_OID_CONTENTS = der.oid(IDENTITY_OID).subarray(2); // the OID's bytes without tag and length

/** The values of every identity extension: Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue
 * }. */
function identityExtensions(buf: Buffer): Buffer[] {
  const malformed = () => new BadParameter('certificate is malformed');
  const ext = tbsFields(buf).extensions;
  if (!ext) return [];
  try {
    const [list, ...more] = der.children(buf, ext);
    if (!list || list.tag !== 0x30 || more.length) throw malformed();
    const out: Buffer[] = [];
    for (const e of der.children(buf, list)) {
      if (e.tag !== 0x30) throw malformed();
      const parts = der.children(buf, e);
      const id = parts[0];
      const value = parts.at(-1);
      if (
        !id ||
        id.tag !== 0x06 ||
        !value ||
        value.tag !== 0x04 ||
        parts.length > 3 ||
        (parts.length === 3 && parts[1]!.tag !== 0x01)
      )
        throw malformed();
      if (buf.subarray(id.start, id.end).equals(IDENTITY_OID_CONTENTS)) out.push(buf.subarray(value.start, value.end));
    }
    return out;
  } catch (err) {
    if (err instanceof BadParameter) throw malformed();
    throw err;
  }
}

function decodeUTF8String(der: Uint8Array): string {
  if (der.length < 2 || der[0] !== 0x0c) throw new BadParameter('identity extension is not a UTF8String');
  let len = der[1]!;
  let offset = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // DER: definite, minimal length of at most 3 octets (64 KiB bound); no indefinite form.
    if (n === 0 || n > 3 || der.length < 2 + n || der[2] === 0)
      throw new BadParameter('identity extension has a bad length');
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
