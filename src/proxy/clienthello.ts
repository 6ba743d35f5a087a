// Reads the ALPN protocols and SNI name from a TLS ClientHello without terminating TLS, so the proxy
// can pass a connection (such as the auth API's mutual TLS) through untouched. RFC 8446 §4.1.2 and
// RFC 5246 §7.4.1.2; ALPN: RFC 7301; SNI: RFC 6066 §3. Every length is checked against its container.

export interface ClientHelloInfo {
  alpn: string[];
  serverName?: string;
}

/** The ClientHello may span several TLS records only in theory; we read it from the first record. */
export const MAX_RECORD = 5 + 16384;

export type PeekResult = { status: 'need-more' } | { status: 'invalid' } | { status: 'ok'; info: ClientHelloInfo };

class Reader {
  constructor(
    private buf: Buffer,
    public pos = 0,
    private end = buf.length,
  ) {}
  u8(): number {
    if (this.pos + 1 > this.end) throw new RangeError();
    return this.buf[this.pos++]!;
  }
  u16(): number {
    if (this.pos + 2 > this.end) throw new RangeError();
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number {
    return (this.u8() << 16) | this.u16();
  }
  bytes(n: number): Buffer {
    if (this.pos + n > this.end) throw new RangeError();
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  sub(n: number): Reader {
    if (this.pos + n > this.end) throw new RangeError();
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
}

export function peekClientHello(data: Buffer): PeekResult {
  if (data.length < 5) return { status: 'need-more' };
  if (data[0] !== 0x16 || data[1] !== 0x03) return { status: 'invalid' };
  const recordLength = data.readUInt16BE(3);
  if (recordLength > 16384 || recordLength < 4) return { status: 'invalid' };
  if (data.length < 5 + recordLength) return { status: 'need-more' };
  try {
    const r = new Reader(data, 5, 5 + recordLength);
    if (r.u8() !== 1) return { status: 'invalid' }; // handshake type client_hello
    const hello = r.sub(Math.min(r.u24(), r.remaining));
    hello.bytes(2 + 32); // legacy_version, random
    hello.bytes(hello.u8()); // session id
    hello.bytes(hello.u16()); // cipher suites
    hello.bytes(hello.u8()); // compression methods
    const info: ClientHelloInfo = { alpn: [] };
    if (hello.remaining === 0) return { status: 'ok', info };
    const exts = hello.sub(hello.u16());
    while (exts.remaining > 0) {
      const type = exts.u16();
      const ext = exts.sub(exts.u16());
      if (type === 16) {
        const list = ext.sub(ext.u16());
        while (list.remaining > 0) info.alpn.push(list.bytes(list.u8()).toString('latin1'));
      } else if (type === 0) {
        const list = ext.sub(ext.u16());
        while (list.remaining > 0) {
          const nameType = list.u8();
          const name = list.bytes(list.u16()).toString('latin1');
          if (nameType === 0) info.serverName = name;
        }
      }
    }
    return { status: 'ok', info };
  } catch {
    return { status: 'invalid' };
  }
}
