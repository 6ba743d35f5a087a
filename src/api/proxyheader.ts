// The signed header a proxy writes before the bytes of a client's connection it passes through to the auth server
// (the ward-auth pass-through). TLS ends at the auth server, which therefore sees the proxy as the peer of every
// client; the header tells it the client's address, in a way it can check (auth/connsource.ts), as Teleport's
// signed PROXY headers do. docs/auth-api.md describes the format. Pure: no sockets, no clock.
import { sign, verify, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

/** The first bytes. 'W' (0x57) can never start a TLS record (0x16), so the auth server tells the two apart. */
export const PROXY_HEADER_MAGIC = Buffer.from('WARDPXY', 'latin1');
export const PROXY_HEADER_VERSION = 1;
/** magic, version, body length (uint16). */
const PREFIX_BYTES = PROXY_HEADER_MAGIC.length + 1 + 2;
/** A host certificate is about 1 KiB; 4 KiB is room for many names. */
export const MAX_HEADER_CERT_BYTES = 4096;
const NONCE_BYTES = 16;
/** ECDSA P-256 in IEEE P1363 form (r || s): a fixed size, so the body's length is known before it is signed. */
const SIGNATURE_BYTES = 64;
const MAX_ADDRESS_CHARS = 45;
/** The most a header can take on the wire: what the auth server reads at most before deciding. */
export const MAX_PROXY_HEADER_BYTES =
  PREFIX_BYTES + 1 + MAX_ADDRESS_CHARS + 2 + 8 + NONCE_BYTES + 2 + MAX_HEADER_CERT_BYTES + SIGNATURE_BYTES;
/** What the signature covers besides the header's bytes: a header signature is good for nothing else. */
const CONTEXT = Buffer.from('ward proxy header v1\0', 'latin1');

export interface ProxyHeaderFields {
  /** The client's IP address as the proxy's socket saw it. */
  clientAddr: string;
  clientPort: number;
  /** When the proxy wrote the header (ms since the epoch). */
  timeMs: number;
  /** 16 random bytes: the auth server accepts each header once. */
  nonce: Buffer;
  /** DER of the proxy's host certificate, whose key signs the header. */
  certDer: Buffer;
}

export interface ProxyHeader extends ProxyHeaderFields {
  /** The bytes the signature covers (after CONTEXT). */
  signed: Buffer;
  signature: Buffer;
}

export type ProxyHeaderParse =
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string }
  | { status: 'ok'; header: ProxyHeader; length: number };

/** Whether `head` (the first bytes of a connection) starts, or may yet start, a proxy header. */
export function mayBeProxyHeader(head: Buffer): boolean {
  const n = Math.min(head.length, PROXY_HEADER_MAGIC.length);
  return n > 0 && head.subarray(0, n).equals(PROXY_HEADER_MAGIC.subarray(0, n));
}

/** The header for one connection, signed with the proxy's host key (ECDSA P-256). */
export function encodeProxyHeader(fields: ProxyHeaderFields, key: KeyObject): Buffer {
  const addr = Buffer.from(fields.clientAddr, 'latin1');
  if (isIP(fields.clientAddr) === 0 || addr.length > MAX_ADDRESS_CHARS) {
    throw new RangeError('client address is not an IP address');
  }
  if (fields.nonce.length !== NONCE_BYTES) throw new RangeError('nonce must be 16 bytes');
  if (fields.certDer.length > MAX_HEADER_CERT_BYTES) {
    throw new RangeError('certificate is too large for a proxy header');
  }
  const bodyLength = 1 + addr.length + 2 + 8 + NONCE_BYTES + 2 + fields.certDer.length + SIGNATURE_BYTES;
  const prefix = Buffer.alloc(PREFIX_BYTES);
  PROXY_HEADER_MAGIC.copy(prefix);
  prefix.writeUInt8(PROXY_HEADER_VERSION, PROXY_HEADER_MAGIC.length);
  prefix.writeUInt16BE(bodyLength, PROXY_HEADER_MAGIC.length + 1);
  const numbers = Buffer.alloc(2 + 8);
  numbers.writeUInt16BE(fields.clientPort, 0);
  numbers.writeBigUInt64BE(BigInt(fields.timeMs), 2);
  const certLength = Buffer.alloc(2);
  certLength.writeUInt16BE(fields.certDer.length);
  const addrLength = Buffer.from([addr.length]);
  const signed = Buffer.concat([prefix, addrLength, addr, numbers, fields.nonce, certLength, fields.certDer]);
  const signature = sign('sha256', Buffer.concat([CONTEXT, signed]), { key, dsaEncoding: 'ieee-p1363' });
  return Buffer.concat([signed, signature]);
}

/**
 * Reads a header from the start of `head`, strictly: the version, every length within bounds, an IP address, and
 * nothing left over inside the declared length. Does not check the signature or the certificate.
 */
export function parseProxyHeader(head: Buffer): ProxyHeaderParse {
  if (!mayBeProxyHeader(head)) return { status: 'invalid', reason: 'not a proxy header' };
  if (head.length < PREFIX_BYTES) return { status: 'incomplete' };
  const version = head.readUInt8(PROXY_HEADER_MAGIC.length);
  if (version !== PROXY_HEADER_VERSION) return { status: 'invalid', reason: `unknown proxy header version ${version}` };
  const bodyLength = head.readUInt16BE(PROXY_HEADER_MAGIC.length + 1);
  const length = PREFIX_BYTES + bodyLength;
  if (length > MAX_PROXY_HEADER_BYTES) return { status: 'invalid', reason: 'proxy header is too long' };
  if (head.length < length) return { status: 'incomplete' };
  const body = head.subarray(PREFIX_BYTES, length);
  const invalid = (reason: string): ProxyHeaderParse => ({ status: 'invalid', reason });
  let at = 0;
  const take = (n: number): Buffer | undefined => {
    if (at + n > body.length) return undefined;
    const part = body.subarray(at, at + n);
    at += n;
    return part;
  };
  const addrLength = take(1)?.readUInt8(0);
  const addr = addrLength !== undefined && addrLength <= MAX_ADDRESS_CHARS ? take(addrLength) : undefined;
  const numbers = take(2 + 8);
  const nonce = take(NONCE_BYTES);
  const certLength = take(2)?.readUInt16BE(0);
  const certDer = certLength !== undefined && certLength <= MAX_HEADER_CERT_BYTES ? take(certLength) : undefined;
  const signed = head.subarray(0, PREFIX_BYTES + at);
  const signature = take(SIGNATURE_BYTES);
  if (!addr || !numbers || !nonce || !certDer || !signature) return invalid('proxy header is truncated');
  if (at !== body.length) return invalid('proxy header has bytes after its signature');
  const clientAddr = addr.toString('latin1');
  if (isIP(clientAddr) === 0) return invalid('proxy header names no IP address');
  const timeMs = Number(numbers.readBigUInt64BE(2));
  if (!Number.isSafeInteger(timeMs)) return invalid('proxy header time is out of range');
  const header = { clientAddr, clientPort: numbers.readUInt16BE(0), timeMs, nonce, certDer, signed, signature };
  return { status: 'ok', header, length };
}

/** Whether the header was signed by the key of `publicKey` (the proxy certificate's). */
export function verifyProxyHeaderSignature(header: ProxyHeader, publicKey: KeyObject): boolean {
  try {
    const key = { key: publicKey, dsaEncoding: 'ieee-p1363' as const };
    return verify('sha256', Buffer.concat([CONTEXT, header.signed]), key, header.signature);
  } catch {
    return false; // a key of another type than the signature's
  }
}
