// The reverse tunnel's wire format: a small stream multiplexer (yamux-like) spoken inside the tunnel's TLS
// connection. The proxy opens one stream per user connection it routes to the client. Pure: frame encoding
// and an incremental decoder that enforces every length limit; the I/O half is muxsession.ts.
//
// Why not HTTP/2: an idle tunnel is paid for once per host at the proxy, and
// Node's HTTP/2 session (nghttp2 plus its JS wrapper) cost ~20-25 KiB RSS per idle tunnel on top of the
// TLS socket, whatever the settings (header tables, session memory, windows: measured with 2,000 tunnels,
// bench/tunnel-memory.ts). This framing costs a few hundred bytes per idle tunnel and keeps what HTTP/2
// gave us: per-stream and per-session flow control, half-close, reset, and PING keepalive.
//
// Frame: a 12-byte header, then `length` payload bytes for DATA and OPEN only.
//   0      version (1)
//   1      type (FrameType)
//   2..3   flags (FLAG_ACK on PING; every other bit must be 0)
//   4..7   stream id (uint32 BE): odd, opened by the proxy, strictly increasing; 0 = the session itself
//   8..11  length (uint32 BE): payload size for DATA/OPEN; the value itself for WINDOW_UPDATE (credit),
//          RESET (reason), PING (opaque), HELLO (version); must be 0 for ACCEPT and CLOSE
// Flow control follows HTTP/2 (RFC 9113 §5.2): DATA may not exceed the receiver's stream window nor its
// session window; the receiver returns credit with WINDOW_UPDATE once its reader has consumed the bytes.

export const MUX_VERSION = 1;
export const HEADER_SIZE = 12;

export const FrameType = {
  /** Stream bytes. */
  DATA: 0,
  /** Credit: the receiver may be sent `length` more bytes (stream id 0: session window). */
  WINDOW_UPDATE: 1,
  /** Proxy → agent: a new stream; payload = dial metadata (encodeDialMeta). */
  OPEN: 2,
  /** Agent → proxy: the stream is accepted. */
  ACCEPT: 3,
  /** The sender will send no more DATA on this stream (half-close, like END_STREAM). */
  CLOSE: 4,
  /** The stream is abandoned in both directions; `length` is a ResetCode. */
  RESET: 5,
  /** Keepalive; answered with the same value and FLAG_ACK. */
  PING: 6,
  /** First frame each side sends; `length` is the sender's MUX_VERSION. */
  HELLO: 7,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
const MAX_TYPE = FrameType.HELLO;

export const FLAG_ACK = 1;

export const ResetCode = {
  CANCEL: 0,
  /** The agent refused the dial (malformed metadata, or nothing to connect to). */
  REFUSED: 1,
  /** The agent already carries its maximum of concurrent streams. */
  TOO_MANY_STREAMS: 2,
  /** The peer broke the stream's rules (DATA after CLOSE, window overrun on this stream). */
  PROTOCOL: 3,
} as const;

/** Largest DATA payload: one frame of a bulk copy fills a loopback link without a copy per 16 KiB record. */
export const MAX_DATA_FRAME = 64 * 1024;
/** OPEN carries two metadata strings of at most 1,024 characters each, plus their length prefixes. */
export const MAX_OPEN_PAYLOAD = 4 + 2 * 1024;
/** Windows are 31-bit like HTTP/2's: credit that would take one past this is a protocol error. */
export const MAX_WINDOW = 2 ** 31 - 1;

export class MuxProtocolError extends Error {
  readonly code = 'ERR_TUNNEL_PROTOCOL';
}

export interface FrameHeader {
  type: FrameType;
  flags: number;
  streamId: number;
  length: number;
}

export function encodeHeader(type: FrameType, streamId: number, length: number, flags = 0): Buffer {
  const b = Buffer.allocUnsafe(HEADER_SIZE);
  b[0] = MUX_VERSION;
  b[1] = type;
  b.writeUInt16BE(flags, 2);
  b.writeUInt32BE(streamId >>> 0, 4);
  b.writeUInt32BE(length >>> 0, 8);
  return b;
}

export interface DialFields {
  target: string;
  clientAddr: string;
}

/** OPEN payload: two uint16-length-prefixed ASCII strings, target then client address. */
export function encodeDialMeta(meta: DialFields): Buffer {
  const t = Buffer.from(meta.target, 'latin1');
  const c = Buffer.from(meta.clientAddr, 'latin1');
  if (4 + t.length + c.length > MAX_OPEN_PAYLOAD) throw new MuxProtocolError('dial metadata too long');
  const b = Buffer.allocUnsafe(4 + t.length + c.length);
  b.writeUInt16BE(t.length, 0);
  t.copy(b, 2);
  b.writeUInt16BE(c.length, 2 + t.length);
  c.copy(b, 4 + t.length);
  return b;
}

/** Splits an OPEN payload; the caller still validates the values (checkMetaValue). */
export function decodeDialMeta(payload: Buffer): DialFields {
  if (payload.length < 4) throw new MuxProtocolError('OPEN payload truncated');
  const tl = payload.readUInt16BE(0);
  if (2 + tl + 2 > payload.length) throw new MuxProtocolError('OPEN payload truncated');
  const cl = payload.readUInt16BE(2 + tl);
  if (4 + tl + cl !== payload.length) throw new MuxProtocolError('OPEN payload length mismatch');
  return { target: payload.toString('latin1', 2, 2 + tl), clientAddr: payload.toString('latin1', 4 + tl) };
}

export interface FrameSink {
  /** Every frame's header, once validated; OPEN comes with its whole payload, DATA without (see data()). */
  frame(h: FrameHeader, payload?: Buffer): void;
  /** A piece of the current DATA frame's payload, delivered as it arrives rather than re-assembled. */
  data(streamId: number, chunk: Buffer): void;
}

/**
 * Incremental decoder. Checks each header before any of its payload is accepted (version, known type,
 * flags, stream id 0 for session frames and non-zero for stream frames, length within limits), and holds
 * at most one header or one OPEN payload: never more than MAX_OPEN_PAYLOAD bytes whatever the peer sends.
 * Throws MuxProtocolError on the first violation; the session then tears the connection down.
 */
export class FrameDecoder {
  private head: Buffer | null = null;
  private headLen = 0;
  /** Payload bytes still to come for the current DATA (or OPEN) frame. */
  private remaining = 0;
  private current: FrameHeader | null = null;
  private openParts: Buffer[] | null = null;
  private failed = false;

  constructor(private readonly sink: FrameSink) {}

  push(chunk: Buffer): void {
    if (this.failed) throw new MuxProtocolError('decoder already failed');
    try {
      this.consume(chunk);
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /** True between frames: a connection that ends here ended cleanly. */
  get idle(): boolean {
    return this.current === null && this.headLen === 0;
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const cur = this.current;
      if (cur) {
        const n = Math.min(this.remaining, chunk.length - off);
        const piece = chunk.subarray(off, off + n);
        off += n;
        this.remaining -= n;
        if (cur.type === FrameType.DATA) {
          this.sink.data(cur.streamId, piece);
          if (this.remaining === 0) this.current = null;
        } else {
          this.openParts!.push(piece);
          if (this.remaining === 0) {
            const parts = this.openParts!;
            this.openParts = null;
            this.current = null;
            this.sink.frame(cur, parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts));
          }
        }
        continue;
      }
      // Header: parse in place when it is whole in this chunk, else gather it (at most 12 bytes held).
      let h: Buffer;
      let at: number;
      if (this.headLen === 0 && chunk.length - off >= HEADER_SIZE) {
        h = chunk;
        at = off;
        off += HEADER_SIZE;
      } else {
        this.head ??= Buffer.allocUnsafe(HEADER_SIZE);
        const n = Math.min(HEADER_SIZE - this.headLen, chunk.length - off);
        chunk.copy(this.head, this.headLen, off, off + n);
        this.headLen += n;
        off += n;
        if (this.headLen < HEADER_SIZE) return;
        h = this.head;
        at = 0;
        this.headLen = 0;
        this.head = null; // an idle session holds no buffer
      }
      const header = parseHeader(h, at);
      if (header.type === FrameType.DATA || header.type === FrameType.OPEN) {
        if (header.type === FrameType.OPEN) this.openParts = [];
        this.sink.frame(header);
        if (header.length === 0) {
          if (header.type === FrameType.OPEN) {
            this.openParts = null;
            throw new MuxProtocolError('OPEN without dial metadata');
          }
          continue;
        }
        this.current = header;
        this.remaining = header.length;
      } else {
        this.sink.frame(header);
      }
    }
  }
}

/** Validates one header; throws MuxProtocolError naming the first rule it breaks. */
export function parseHeader(b: Buffer, at = 0): FrameHeader {
  if (b[at] !== MUX_VERSION) throw new MuxProtocolError(`unsupported frame version ${b[at]}`);
  const type = b[at + 1]!;
  if (type > MAX_TYPE) throw new MuxProtocolError(`unknown frame type ${type}`);
  const flags = b.readUInt16BE(at + 2);
  const streamId = b.readUInt32BE(at + 4);
  const length = b.readUInt32BE(at + 8);
  if (flags & ~(type === FrameType.PING ? FLAG_ACK : 0))
    throw new MuxProtocolError(`unknown flags ${flags} on frame type ${type}`);
  const sessionFrame = type === FrameType.PING || type === FrameType.HELLO;
  if (sessionFrame && streamId !== 0) throw new MuxProtocolError(`frame type ${type} on stream ${streamId}`);
  if (!sessionFrame && type !== FrameType.WINDOW_UPDATE && streamId === 0)
    throw new MuxProtocolError(`frame type ${type} on stream 0`);
  switch (type) {
    case FrameType.DATA:
      if (length > MAX_DATA_FRAME)
        throw new MuxProtocolError(`DATA frame of ${length} bytes exceeds ${MAX_DATA_FRAME}`);
      break;
    case FrameType.OPEN:
      if (length > MAX_OPEN_PAYLOAD)
        throw new MuxProtocolError(`OPEN frame of ${length} bytes exceeds ${MAX_OPEN_PAYLOAD}`);
      break;
    case FrameType.WINDOW_UPDATE:
      if (length === 0 || length > MAX_WINDOW) throw new MuxProtocolError(`window increment ${length} out of range`);
      break;
    case FrameType.ACCEPT:
    case FrameType.CLOSE:
      if (length !== 0) throw new MuxProtocolError(`frame type ${type} with length ${length}`);
      break;
  }
  return { type: type as FrameType, flags, streamId, length };
}
