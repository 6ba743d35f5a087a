// SSH wire data types (RFC 4251 section 5): the bounded reader and the writer under every SSH key,
// signature and certificate codec in Ward. The reader checks each length against the bytes that remain,
// so hostile input ends in BadParameter, never in a RangeError or an oversized allocation.
import { BadParameter } from '../api/errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class SSHReader {
  private offset = 0;

  /** `what` names the structure in error messages ("certificate", "signature"...). */
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  /** Bytes consumed so far: the certificate parser uses it to find the signed prefix. */
  get position(): number {
    return this.offset;
  }

  fail(reason: string): never {
    throw new BadParameter(`malformed ${this.what}: ${reason}`);
  }

  bytes(n: number): Buffer {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) this.fail('truncated');
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  byte(): number {
    return this.bytes(1)[0]!;
  }

  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }

  uint64(): bigint {
    return this.bytes(8).readBigUInt64BE(0);
  }

  /** RFC 4251 `string`: uint32 length then that many bytes, at most `max` of them. */
  string(max = Number.MAX_SAFE_INTEGER): Buffer {
    const len = this.uint32();
    if (len > max) this.fail(`field of ${len} bytes exceeds the limit of ${max}`);
    return this.bytes(len);
  }

  /**
   * A text string. OpenSSH reads these as C strings, so an embedded NUL (which would truncate the
   * name on its side and make Ward and sshd disagree) is refused, as is invalid UTF-8.
   */
  text(max: number): string {
    return this.decodeText(this.string(max));
  }

  decodeText(raw: Buffer): string {
    if (raw.includes(0)) this.fail('text contains a NUL byte');
    try {
      return utf8.decode(raw);
    } catch {
      return this.fail('text is not valid UTF-8');
    }
  }

  /**
   * RFC 4251 `mpint`, restricted to non-negative values in minimal encoding (as OpenSSH's
   * sshbuf_get_bignum2 insists). Returns the big-endian magnitude without leading zeros.
   */
  mpint(maxBytes: number): Buffer {
    const raw = this.string(maxBytes + 1);
    if (raw.length === 0) return raw;
    if (raw[0]! & 0x80) this.fail('negative mpint');
    if (raw[0] === 0 && (raw.length === 1 || !(raw[1]! & 0x80))) this.fail('mpint has a needless leading zero');
    const magnitude = raw[0] === 0 ? raw.subarray(1) : raw;
    if (magnitude.length > maxBytes) this.fail('mpint too large');
    return magnitude;
  }

  /** Every structure Ward parses must be consumed exactly: trailing bytes are a parse error. */
  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} trailing bytes`);
  }
}

export class SSHWriter {
  private readonly chunks: Buffer[] = [];

  raw(b: Buffer): this {
    this.chunks.push(b);
    return this;
  }

  byte(n: number): this {
    return this.raw(Buffer.from([n]));
  }

  uint32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return this.raw(b);
  }

  uint64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    return this.raw(b);
  }

  string(s: Buffer | string): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    return this.uint32(b.length).raw(b);
  }

  /** Non-negative mpint from a big-endian magnitude: strip leading zeros, prefix 0x00 if the top bit is set. */
  mpint(magnitude: Buffer): this {
    let start = 0;
    while (start < magnitude.length && magnitude[start] === 0) start++;
    const m = magnitude.subarray(start);
    return this.string(m.length > 0 && m[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Left-pads a big-endian magnitude to `size` bytes (fixed-width scalars for JWK and P1363). */
export function padStart(magnitude: Buffer, size: number): Buffer {
  if (magnitude.length > size) throw new BadParameter('integer too large');
  return Buffer.concat([Buffer.alloc(size - magnitude.length), magnitude]);
}
