// The I/O half of the tunnel multiplexer (wire format in streammux.ts): one MuxSession per tunnel socket, one
// MuxStream (muxstream.ts, a Node Duplex) per user connection. The proxy is the opener, the agent the
// acceptor. Every buffer is bounded: a stream buffers at most its window, a session at most its session
// window, and a peer that breaks a rule or stops reading our control replies loses the whole connection.
import type { Duplex } from 'node:stream';
import {
  FLAG_ACK,
  FrameDecoder,
  FrameType,
  MAX_WINDOW,
  MUX_VERSION,
  MuxProtocolError,
  ResetCode,
  decodeDialMeta,
  encodeDialMeta,
  encodeHeader,
  type DialFields,
  type FrameHeader,
} from './streammux.ts';
import { MuxStream, type StreamCarrier } from './muxstream.ts';

export { MuxStream, StreamReset } from './muxstream.ts';

export interface MuxLimits {
  /** Bytes one stream may have in flight to the receiver unacknowledged. */
  streamWindow: number;
  /** Bytes all streams of a session together may have in flight. */
  sessionWindow: number;
  /** Streams open at once; the acceptor refuses more with RESET(TOO_MANY_STREAMS), the opener refuses to dial. */
  maxStreams: number;
}

export interface MuxSessionOptions extends MuxLimits {
  role: 'opener' | 'acceptor';
  /** Acceptor: a stream the peer opened; call stream.accept() or stream.refuse(). */
  onOpen?(stream: MuxStream, meta: DialFields): void;
  /** The peer's HELLO arrived: it speaks our protocol, and (for the agent) the proxy accepted us. */
  onReady?(): void;
  /** The connection is gone (socket closed, protocol error, destroy()). Called once. */
  onClose?(err?: Error): void;
}

/** A peer that leaves this much of our control replies (PING ACKs, RESETs) unread is not reading at all. */
const MAX_WRITE_BACKLOG = 8 * 1024 * 1024;
/** After a graceful end, the peer has this long to close its side. */
const END_GRACE_MS = 2_000;

// Per-session state is paid once per idle tunnel at the proxy: plain fields, the stream map made on first use.
export class MuxSession implements StreamCarrier {
  private readonly decoder: FrameDecoder;
  private streams: Map<number, MuxStream> | null = null;
  /** Opener: the next id to use. Acceptor: the highest id the peer has opened so far. */
  private lastId = 0;
  private sendWindow: number;
  /** Bytes received on the session and not yet credited back to the peer. */
  private recvUnacked = 0;
  /** Bytes consumed (or dropped) and not yet credited. */
  private pendingCredit = 0;
  /** Streams waiting for session window. */
  private blocked: Set<MuxStream> | null = null;
  private drainWaiters: Array<() => void> | null = null;
  private helloSeen = false;
  private draining = false;
  private closed = false;
  /** A keepalive PING is unanswered. */
  pingOutstanding = false;

  constructor(
    readonly socket: Duplex,
    readonly opts: MuxSessionOptions,
  ) {
    this.sendWindow = opts.sessionWindow;
    this.decoder = new FrameDecoder(this);
    socket.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      try {
        this.decoder.push(chunk);
      } catch (err) {
        this.destroy(err as Error);
      }
    });
    socket.on('drain', () => this.onDrain());
    socket.once('close', () => this.teardown());
    this.send(FrameType.HELLO, 0, MUX_VERSION);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get streamCount(): number {
    return this.streams?.size ?? 0;
  }

  /** Opener: a new stream carrying `meta`; resolve on the peer's ACCEPT with stream.accepted. */
  open(meta: DialFields): MuxStream {
    if (this.opts.role !== 'opener') throw new MuxProtocolError('only the opener opens streams');
    if (this.closed || this.draining) throw new MuxProtocolError('session is closing');
    if (this.streamCount >= this.opts.maxStreams)
      throw new MuxProtocolError(`session carries its maximum of ${this.opts.maxStreams} streams`);
    const id = this.lastId === 0 ? 1 : this.lastId + 2;
    if (id > MAX_WINDOW) throw new MuxProtocolError('stream ids exhausted');
    const payload = encodeDialMeta(meta);
    this.lastId = id;
    const s = new MuxStream(this, id);
    (this.streams ??= new Map()).set(id, s);
    this.sendFrame(FrameType.OPEN, id, payload);
    return s;
  }

  /** Sends a keepalive PING; the caller checks pingOutstanding on its next round. */
  ping(): void {
    this.pingOutstanding = true;
    this.send(FrameType.PING, 0, 0);
  }

  /** Takes no new streams; ends the connection once the last stream is done (HTTP/2's GOAWAY, locally). */
  drain(): void {
    this.draining = true;
    if (this.streamCount === 0) this.end();
  }

  destroy(err?: Error): void {
    if (!this.socket.destroyed) this.socket.destroy();
    this.teardown(err);
  }

  // ---- FrameSink: called by the decoder ----

  frame(h: FrameHeader, payload?: Buffer): void {
    if (!this.helloSeen) {
      if (h.type !== FrameType.HELLO) throw new MuxProtocolError('first frame is not HELLO');
      if (h.length !== MUX_VERSION)
        throw new MuxProtocolError(`peer speaks tunnel protocol ${h.length}, not ${MUX_VERSION}`);
      this.helloSeen = true;
      this.opts.onReady?.();
      return;
    }
    switch (h.type) {
      case FrameType.HELLO:
        throw new MuxProtocolError('second HELLO');
      case FrameType.PING:
        if (h.flags & FLAG_ACK) this.pingOutstanding = false;
        else this.sendControl(FrameType.PING, 0, h.length, FLAG_ACK);
        return;
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(h.streamId, h.length);
      case FrameType.OPEN:
        // The decoder calls us once at the header (no payload yet) and once with the payload.
        if (payload) this.onOpenFrame(h.streamId, payload);
        else this.checkNewStreamId(h.streamId);
        return;
      case FrameType.DATA:
        return this.onDataHeader(h.streamId, h.length);
      case FrameType.ACCEPT: {
        if (this.opts.role !== 'opener') throw new MuxProtocolError('ACCEPT sent to the acceptor');
        const s = this.knownStream(h.streamId, 'ACCEPT');
        if (s) s.onAccept();
        return;
      }
      case FrameType.CLOSE: {
        const s = this.knownStream(h.streamId, 'CLOSE');
        if (s) s.onRemoteClose();
        return;
      }
      case FrameType.RESET: {
        const s = this.knownStream(h.streamId, 'RESET', true);
        if (s) s.onRemoteReset(h.length);
        return;
      }
    }
  }

  /** The DATA frame whose header was last validated goes to this stream, or is dropped (stream gone). */
  private dataTarget: MuxStream | null = null;

  data(_streamId: number, chunk: Buffer): void {
    const s = this.dataTarget;
    if (s && !s.destroyed) s.onData(chunk);
    else this.consumed(chunk.length);
  }

  private onDataHeader(id: number, length: number): void {
    if (length > this.opts.sessionWindow - this.recvUnacked)
      throw new MuxProtocolError('DATA overruns the session window');
    this.recvUnacked += length;
    const s = this.knownStream(id, 'DATA');
    this.dataTarget = s ?? null;
    if (s) s.onDataHeader(length);
  }

  /**
   * The stream for a stream frame, or undefined when the id belongs to a stream that has already ended
   * here (frames in flight when we reset it are dropped). An id never opened is a protocol error.
   */
  private knownStream(id: number, what: string, tolerateUnopened = false): MuxStream | undefined {
    const s = this.streams?.get(id);
    if (s) return s;
    if (id % 2 === 1 && id <= this.lastId) return undefined;
    if (tolerateUnopened) return undefined;
    throw new MuxProtocolError(`${what} on stream ${id}, which was never opened`);
  }

  private checkNewStreamId(id: number): void {
    if (this.opts.role !== 'acceptor') throw new MuxProtocolError('OPEN sent to the opener');
    if (id % 2 !== 1 || id <= this.lastId) throw new MuxProtocolError(`OPEN reuses or skips back to stream id ${id}`);
    this.lastId = id;
  }

  private onOpenFrame(id: number, payload: Buffer): void {
    const meta = decodeDialMeta(payload);
    if (this.draining || this.streamCount >= this.opts.maxStreams) {
      this.sendControl(FrameType.RESET, id, ResetCode.TOO_MANY_STREAMS);
      return;
    }
    const s = new MuxStream(this, id);
    (this.streams ??= new Map()).set(id, s);
    if (this.opts.onOpen) this.opts.onOpen(s, meta);
    else s.refuse();
  }

  private onWindowUpdate(id: number, increment: number): void {
    if (id === 0) {
      if (this.sendWindow + increment > MAX_WINDOW) throw new MuxProtocolError('session window overflow');
      this.sendWindow += increment;
      const waiting = this.blocked;
      this.blocked = null;
      if (waiting) for (const s of waiting) s.flush();
      return;
    }
    const s = this.knownStream(id, 'WINDOW_UPDATE');
    if (s) s.onWindowUpdate(increment);
  }

  // ---- used by MuxStream ----

  /** Bytes a stream may send now under the session window. */
  get sessionSendWindow(): number {
    return this.sendWindow;
  }

  takeSendWindow(n: number): void {
    this.sendWindow -= n;
  }

  waitForSessionWindow(s: MuxStream): void {
    (this.blocked ??= new Set()).add(s);
  }

  /** Stream bytes the reader consumed, or that were dropped: credit them back on the session window. */
  consumed(n: number): void {
    if (n <= 0) return;
    this.pendingCredit += n;
    if (this.pendingCredit >= this.opts.sessionWindow / 4) {
      const credit = this.pendingCredit;
      this.pendingCredit = 0;
      this.recvUnacked -= credit;
      if (!this.closed) this.send(FrameType.WINDOW_UPDATE, 0, credit);
    }
  }

  whenDrained(fn: () => void): void {
    (this.drainWaiters ??= []).push(fn);
  }

  forget(s: MuxStream): void {
    this.streams?.delete(s.id);
    this.blocked?.delete(s);
    if (this.streams?.size === 0) this.streams = null;
    if (this.draining && this.streamCount === 0) this.end();
  }

  send(type: FrameType, id: number, value: number, flags = 0): void {
    if (this.closed) return;
    this.socket.write(encodeHeader(type, id, value, flags));
  }

  /** A reply the peer provoked: refuse to queue without bound for a peer that does not read. */
  sendControl(type: FrameType, id: number, value: number, flags = 0): void {
    if (this.socket.writableLength > MAX_WRITE_BACKLOG) throw new MuxProtocolError('peer does not read its replies');
    this.send(type, id, value, flags);
  }

  /** Header and payload in one corked write, so TLS puts them in one record where it can. */
  sendFrame(type: FrameType, id: number, payload: Buffer): boolean {
    if (this.closed) return false;
    this.socket.cork();
    this.socket.write(encodeHeader(type, id, payload.length));
    const ok = this.socket.write(payload);
    this.socket.uncork();
    return ok && !this.socket.writableNeedDrain;
  }

  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  private onDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    if (waiters) for (const fn of waiters) fn();
  }

  private end(): void {
    if (this.closed) return;
    this.socket.end();
    setTimeout(() => this.destroy(), END_GRACE_MS).unref();
  }

  private teardown(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    const streams = this.streams;
    this.streams = null;
    this.blocked = null;
    this.drainWaiters = null;
    // Like an HTTP/2 session that goes away: its streams close, without an error of their own (a reader
    // that had not seen the end gets a premature close).
    if (streams) for (const s of streams.values()) s.destroy();
    this.opts.onClose?.(err);
  }
}
