// One user connection through a reverse tunnel (muxsession.ts owns the connection): a Node Duplex whose
// writes spend the receiver's credit and whose reads return it, so existing callers pipe sockets through it.
import { Duplex } from 'node:stream';
import { FrameType, MAX_DATA_FRAME, MAX_WINDOW, MuxProtocolError, ResetCode } from './streammux.ts';

const EMPTY = Buffer.alloc(0);

/**
 * What a stream needs of the session that carries it (MuxSession in muxsession.ts): the stream window, frames
 * out, and the session's shared send window and credit. Declared here, on the stream's side, so the stream does
 * not depend on the session that creates it.
 */
export interface StreamCarrier {
  readonly opts: { readonly streamWindow: number };
  readonly isClosed: boolean;
  /** Bytes a stream may send now under the session window. */
  readonly sessionSendWindow: number;
  readonly needsDrain: boolean;
  send(type: FrameType, id: number, value: number): void;
  sendFrame(type: FrameType, id: number, payload: Buffer): boolean;
  takeSendWindow(n: number): void;
  waitForSessionWindow(s: MuxStream): void;
  /** Stream bytes the reader consumed, or that were dropped. */
  consumed(n: number): void;
  whenDrained(fn: () => void): void;
  forget(s: MuxStream): void;
}

export class StreamReset extends Error {
  readonly code = 'ERR_TUNNEL_STREAM_RESET';
  constructor(readonly reason: number) {
    super(`tunnel stream reset by peer (reason ${reason})`);
  }
}

/**
 * One user connection through the tunnel, as a Duplex: pipe a socket into it and it back. Writes wait for
 * window (the receiver's credit), so a slow reader on the far side slows the writer here instead of
 * growing a buffer anywhere.
 */
export class MuxStream extends Duplex {
  private sendWindow: number;
  /** Received and not yet credited back on this stream. */
  private recvUnacked = 0;
  private received = 0;
  /** Of `received`, how much the reader had consumed when we last looked. */
  private consumedSeen = 0;
  private credited = 0;
  private pending: { chunk: Buffer; cb: (err?: Error | null) => void } | null = null;
  private localClosed = false;
  private remoteClosed = false;
  private resetByPeer = false;
  private acceptedFlag = false;
  private acceptWaiter: ((err?: Error) => void) | null = null;

  constructor(
    private readonly session: StreamCarrier,
    readonly id: number,
  ) {
    // The read high-water mark is below the window so _read runs, and credit flows back, as the reader drains.
    super({ readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024, allowHalfOpen: true });
    this.sendWindow = session.opts.streamWindow;
  }

  /** The peer reset (or, on the acceptor, we refused) this stream. */
  get isReset(): boolean {
    return this.resetByPeer;
  }

  /** Opener: resolves when the peer accepts the stream; rejects on RESET or close. */
  accepted(): Promise<void> {
    if (this.acceptedFlag) return Promise.resolve();
    if (this.destroyed) return Promise.reject(new StreamReset(ResetCode.CANCEL));
    return new Promise((resolve, reject) => {
      this.acceptWaiter = (err) => (err ? reject(err) : resolve());
    });
  }

  /** Acceptor: take the stream. */
  accept(): void {
    this.acceptedFlag = true;
    this.session.send(FrameType.ACCEPT, this.id, 0);
  }

  /** Acceptor: turn the stream down (bad metadata, nothing to connect to). */
  refuse(reason: number = ResetCode.REFUSED): void {
    this.resetByPeer = true; // nothing more to say on the wire after our RESET
    this.session.send(FrameType.RESET, this.id, reason);
    this.destroy();
  }

  // ---- from the session ----

  onAccept(): void {
    if (this.acceptedFlag) throw new MuxProtocolError(`second ACCEPT on stream ${this.id}`);
    this.acceptedFlag = true;
    const w = this.acceptWaiter;
    this.acceptWaiter = null;
    w?.();
  }

  onDataHeader(length: number): void {
    if (this.remoteClosed) throw new MuxProtocolError(`DATA after CLOSE on stream ${this.id}`);
    if (length > this.session.opts.streamWindow - this.recvUnacked)
      throw new MuxProtocolError(`DATA overruns the window of stream ${this.id}`);
    this.recvUnacked += length;
  }

  onData(chunk: Buffer): void {
    this.received += chunk.length;
    this.push(chunk);
    this.credit();
  }

  onRemoteClose(): void {
    if (this.remoteClosed) throw new MuxProtocolError(`second CLOSE on stream ${this.id}`);
    this.remoteClosed = true;
    this.push(null);
  }

  onRemoteReset(reason: number): void {
    this.resetByPeer = true;
    const err = new StreamReset(reason);
    const w = this.acceptWaiter;
    this.acceptWaiter = null;
    if (w) {
      w(err);
      this.destroy();
    } else {
      this.destroy(reason === ResetCode.CANCEL ? undefined : err);
    }
  }

  onWindowUpdate(increment: number): void {
    if (this.sendWindow + increment > MAX_WINDOW) throw new MuxProtocolError(`window overflow on stream ${this.id}`);
    this.sendWindow += increment;
    this.flush();
  }

  /** Returns credit for what the reader consumed: to the session at once, to the stream in quarters of the window. */
  private credit(): void {
    const consumed = this.received - this.readableLength;
    const delta = consumed - this.consumedSeen;
    if (delta <= 0) return;
    this.consumedSeen = consumed;
    this.session.consumed(delta);
    const due = consumed - this.credited;
    if (due >= this.session.opts.streamWindow / 4 && !this.remoteClosed) {
      this.credited = consumed;
      this.recvUnacked -= due;
      this.session.send(FrameType.WINDOW_UPDATE, this.id, due);
    }
  }

  // ---- Duplex ----

  override _read(): void {
    this.credit();
  }

  // Node calls _read() before it takes a chunk from the buffer, and not again until the next push, so a
  // reader draining what is already buffered would never be credited for it: credit after each read.
  // biome-ignore lint/suspicious/noExplicitAny: Readable.read() is declared to return any; the override must match
  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    if (chunk !== null) this.credit();
    return chunk;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.session.isClosed) return cb(new StreamReset(ResetCode.CANCEL));
    this.pending = { chunk, cb };
    this.flush();
  }

  /** Sends as much of the pending write as both windows allow; completes it when all is on the socket. */
  flush(): void {
    const p = this.pending;
    if (!p || this.destroyed) return;
    let chunk = p.chunk;
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, MAX_DATA_FRAME, this.sendWindow, this.session.sessionSendWindow);
      if (n <= 0) {
        p.chunk = chunk;
        // A stream window refills on its own WINDOW_UPDATE (onWindowUpdate); a session one wakes the blocked.
        if (this.sendWindow > 0) this.session.waitForSessionWindow(this);
        return;
      }
      this.sendWindow -= n;
      this.session.takeSendWindow(n);
      this.session.sendFrame(FrameType.DATA, this.id, chunk.subarray(0, n));
      chunk = chunk.subarray(n);
    }
    this.pending = null;
    p.chunk = EMPTY;
    if (this.session.needsDrain) this.session.whenDrained(() => p.cb());
    else p.cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.localClosed = true;
    this.session.send(FrameType.CLOSE, this.id, 0);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const w = this.acceptWaiter;
    this.acceptWaiter = null;
    w?.(err ?? new StreamReset(ResetCode.CANCEL));
    if (!this.resetByPeer && !(this.localClosed && this.remoteClosed))
      this.session.send(FrameType.RESET, this.id, ResetCode.CANCEL);
    // Whatever the reader never took is given back to the session, or the window would shrink for good.
    this.session.consumed(this.received - this.consumedSeen);
    this.consumedSeen = this.received;
    this.pending = null;
    this.session.forget(this);
    cb(err);
  }
}
