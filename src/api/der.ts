// Just enough DER (ITU-T X.690) to build Ward's leaf certificates and to read one extension out of a
// certificate, without a general ASN.1 library. Why: @peculiar/x509 built each certificate through asn1js
// and then re-parsed its own output, which was most of the CPU time of a login (bench/README.md). Every
// writer emits the definite, minimal encodings DER requires; the reader refuses anything else.
// It sits in src/api beside certinfo.ts, the reader every client and server uses; crypto/x509.ts writes with it.
import { BadParameter } from './errors.ts';

// ---- writing ----

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV: tag, minimal definite length, contents. */
export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = contents.length === 1 ? contents[0]! : Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

export const sequence = (...items: Buffer[]) => tlv(0x30, ...items);
export const set = (...items: Buffer[]) => tlv(0x31, ...items);
export const octetString = (b: Buffer) => tlv(0x04, b);
export const utf8String = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
export const printableString = (s: string) => tlv(0x13, Buffer.from(s, 'latin1'));
export const ia5String = (s: string) => tlv(0x16, Buffer.from(s, 'latin1'));
/** DER BOOLEAN TRUE (X.690 11.1: all bits set). FALSE is never written: it is every default it occurs in. */
export const TRUE = Buffer.from([0x01, 0x01, 0xff]);
/** [n] EXPLICIT: a constructed context-specific tag around the encoding of the inner value. */
export const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);
/** [n] IMPLICIT over a primitive type: the inner contents with the context-specific tag. */
export const implicitPrimitive = (n: number, contents: Buffer) => tlv(0x80 | n, contents);

/** A BIT STRING of whole bytes (no unused bits), as signatures and public keys are. */
export const bitString = (bytes: Buffer) => tlv(0x03, Buffer.from([0]), bytes);

/** A non-negative INTEGER from its big-endian magnitude, minimal (X.690 8.3.2), with a 0x00 when the top bit is set. */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  return tlv(0x02, m[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 127) throw new RangeError('smallInteger takes 0..127');
  return Buffer.from([0x02, 0x01, n]);
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  const base128 = (v: number) => {
    const bytes = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift(0x80 | (v & 0x7f));
    out.push(...bytes);
  };
  base128(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) base128(a);
  return tlv(0x06, Buffer.from(out));
}

/**
 * RFC 5280 4.1.2.5: UTCTime (YYMMDDHHMMSSZ) through 2049, GeneralizedTime (YYYYMMDDHHMMSSZ) from 2050;
 * whole seconds, always UTC.
 */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new BadParameter('certificate time out of range');
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  return year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'latin1')) : tlv(0x18, Buffer.from(digits, 'latin1'));
}

// ---- reading ----

export interface Element {
  tag: number;
  /** Offset of the contents in the buffer given to readElement. */
  start: number;
  end: number;
}

/** Reads the TLV at `offset`, strictly: single-byte tags, definite minimal lengths, inside `limit`. */
export function readElement(buf: Uint8Array, offset: number, limit = buf.length): Element {
  const fail = (why: string): never => {
    throw new BadParameter(`malformed DER: ${why}`);
  };
  if (offset + 2 > limit) fail('truncated');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) fail('multi-byte tag');
  let len = buf[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) fail('indefinite length');
    if (n > 4 || start + n > limit) fail('bad length');
    if (buf[start] === 0) fail('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    if (len < 0x80) fail('non-minimal length');
    start += n;
  }
  if (start + len > limit) fail('length past the end');
  return { tag, start, end: start + len };
}

/** The children of a constructed element, in order. */
export function children(buf: Uint8Array, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const e = readElement(buf, at, parent.end);
    out.push(e);
    at = e.end;
  }
  return out;
}
