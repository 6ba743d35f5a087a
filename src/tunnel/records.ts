// Record protection for a reverse tunnel once its TLS 1.3 handshake is done. An idle TLS connection costs the
// proxy ~36-40 KiB in Node (OpenSSL keeps its record buffers for the connection's life), most of a tunnel's
// cost at 10,000 agents. So TLS authenticates both ends and agrees the keys, as before, and then steps aside:
// both ends take keys from the TLS exporter (RFC 8446 §7.5) and protect the tunnel's bytes with AES-256-GCM
// records of their own on the same TCP connection. The split is the one kernel TLS and QUIC
// make: a TLS library does the handshake, the record layer lives elsewhere. Wire format: docs/tunnel.md.
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

/** Exporter label (RFC 5705 §4: private labels begin with "EXPORTER"); the version is in the name. */
export const EXPORTER_LABEL = 'EXPORTER-ward-tunnel-records-v1';
/**
 * Each end's last TLS message, sent as TLS application data: everything after it on the wire is records.
 * Its write callback also orders the switch: TLS's own output (Finished, session tickets) has reached the
 * TCP socket before the first record does.
 */
export const SWITCH = Buffer.from('ward-records-v1\n');

/** A record starts with this byte; a TLS record starts with its content type, 20-23 (RFC 8446 §5.1). */
const RECORD_MARK = 0x00;
const HEADER = 4; // mark, then the ciphertext length in 24 bits
const TAG = 16;
/** The multiplexer writes frames of at most 64 KiB + 12 bytes; bigger writes are split. */
export const MAX_PLAINTEXT = 128 * 1024;
const MAX_TLS_RECORD = 5 + 16_384 + 256; // RFC 8446 §5.2: TLSCiphertext.length ≤ 2^14 + 256
/**
 * Records a peer may send after its TLS handshake is done and checked but before our TLS has delivered its SWITCH
 * (its first multiplexer frames). Only an authenticated peer gets this far: a record before the handshake is done
 * closes the connection.
 */
const MAX_EARLY_BYTES = 256 * 1024;
/**
 * AES-GCM's safety margin (RFC 8446 §5.5: 2^24.5 records of 2^14 bytes, ~2^38.5 bytes, per key): each
 * direction moves to the next key every 2^20 records (at most 2^37 bytes), with no message, since both ends
 * count the same records. The old key is dropped, so a key taken later reveals nothing sent before it.
 */
const RECORDS_PER_KEY = 2 ** 20;
const REKEY_INFO = 'ward-tunnel-rekey-v1';
/** Number counters stay exact up to 2^53. */
const MAX_RECORDS = Number.MAX_SAFE_INTEGER;
const CIPHER = 'aes-256-gcm';
const KEY = 32;
const IV = 12;

/** One direction's protection: its key (replaced every RECORDS_PER_KEY records) and its IV. */
interface Direction {
  key: Buffer;
  iv: Buffer;
}
const EMPTY = Buffer.alloc(0);

export class RecordProtocolError extends Error {}

type Phase = 'handshake' | 'switching' | 'records';

/**
 * One tunnel connection. Before the switch it carries TLS: hand `transport` to TLS as its socket. Call
 * `switchFromTLS(tlsSocket)` once the handshake is done and the peer checked; from then on this Duplex reads
 * and writes the tunnel's plaintext, and TLS is destroyed once both SWITCH messages have passed.
 */
export class RecordChannel extends Duplex {
  /** What TLS reads and writes during the handshake; null once TLS is gone. */
  transport: Duplex | null;
  private tls: TLSSocket | null = null;
  private phase: Phase = 'handshake';
  private send: Direction | null = null;
  private receive: Direction | null = null;
  private sendSeq = 0;
  private receiveSeq = 0;
  private switchSent = false;
  private switchReceived = false;
  /** The peer's first record has arrived: no more TLS from it. */
  private peerInRecords = false;
  private sawTLS = false;
  private peerEnded = false;
  /** feedTLS is running: TLS may deliver the peer's SWITCH from inside it, before `inbound` is up to date. */
  private feeding = false;
  /** Received bytes not yet parsed; `waiting` holds the pieces of a record until `need` bytes are in. */
  private inbound: Buffer = EMPTY;
  private waiting: Buffer[] | null = null;
  private waitingBytes = 0;
  private need = 0;
  /** The first write made before our SWITCH was on the wire (Duplex queues the rest behind it). */
  private heldWrite: { chunks: Array<{ chunk: Buffer }>; cb: (err?: Error | null) => void } | null = null;
  private switchTimer: NodeJS.Timeout | undefined;

  private readonly recordsPerKey: number;

  /**
   * `switchTimeoutMs` bounds the TCP connect, the TLS handshake and the switch together. `recordsPerKey` is
   * part of the protocol (both ends must agree); only tests change it.
   */
  constructor(
    readonly raw: net.Socket,
    opts: { switchTimeoutMs: number; recordsPerKey?: number },
  ) {
    super({ allowHalfOpen: false });
    this.recordsPerKey = opts.recordsPerKey ?? RECORDS_PER_KEY;
    const channel = this;
    // Not a RecordProtocolError: anyone can open a connection and say nothing; that is no breach worth a warning.
    this.switchTimer = setTimeout(() => this.destroy(new Error('tunnel handshake timed out')), opts.switchTimeoutMs);
    this.transport = new Duplex({
      read: () => raw.isPaused() && raw.resume(),
      write(chunk: Buffer, _enc, cb) {
        // TLS writes nothing once it has been switched away from; never let it reach the wire then.
        if (channel.phase !== 'records') raw.write(chunk, cb);
        else cb();
      },
      final(cb) {
        if (channel.phase === 'handshake') raw.end();
        cb();
      },
      destroy(err, cb) {
        // TLS gave up before the switch (a refused certificate, a timeout): the connection goes with it.
        if (channel.phase !== 'records') channel.destroy(err ?? undefined);
        cb(null);
      },
    });
    raw.on('data', (chunk: Buffer) => this.onData(chunk));
    raw.on('end', () => {
      this.peerEnded = true;
      // During the handshake the end is TLS's to report. After it, the end follows the records still held
      // (TLS must not see it: it would close itself, and the connection with it, before they are read).
      if (this.peerInRecords) this.drainInbound();
      else if (this.phase === 'handshake') this.transport?.push(null);
    });
    raw.on('error', (err) => this.destroy(err));
    raw.on('close', () => this.destroy());
    // The proxy's port mux paused the socket while it peeked at the ClientHello.
    raw.resume();
  }

  /** True once TLS has been switched away from in both directions. */
  get switched(): boolean {
    return this.phase === 'records';
  }

  /**
   * Takes the keys from a completed handshake and sends our SWITCH. The caller has checked the peer (its
   * certificate, ALPN) and has done so before calling: nothing reaches the reader until the peer's SWITCH.
   */
  switchFromTLS(tls: TLSSocket, side: 'client' | 'server'): void {
    if (this.phase !== 'handshake') throw new RecordProtocolError('switch already started');
    if (tls.getProtocol() !== 'TLSv1.3') throw new RecordProtocolError('the tunnel needs TLS 1.3');
    this.phase = 'switching';
    this.tls = tls;
    // Keys then IVs, client's first (the TLS 1.3 key schedule's shape, RFC 8446 §7.3). Kept in a buffer of
    // their own (a pooled one would pin an 8 KiB slab for the tunnel's life); the exporter's output is wiped.
    const exported = tls.exportKeyingMaterial(2 * (KEY + IV), EXPORTER_LABEL, Buffer.alloc(0));
    const material = Buffer.allocUnsafeSlow(exported.length);
    exported.copy(material);
    exported.fill(0);
    const part = (at: number, n: number) => material.subarray(at, at + n);
    const client = { key: part(0, KEY), iv: part(2 * KEY, IV) };
    const server = { key: part(KEY, KEY), iv: part(2 * KEY + IV, IV) };
    [this.send, this.receive] = side === 'client' ? [client, server] : [server, client];
    let got = EMPTY;
    tls.on('data', (data: Buffer) => {
      got = Buffer.concat([got, data]);
      if (got.length > SWITCH.length || !SWITCH.subarray(0, got.length).equals(got)) {
        return this.destroy(
          new RecordProtocolError('peer sent data over TLS instead of switching to records (an older agent or proxy?)'),
        );
      }
      if (got.length < SWITCH.length) return;
      this.switchReceived = true;
      // The start of a TLS record already held after the SWITCH would wait for the rest for ever: after its
      // SWITCH the peer sends records only. (Inside feedTLS, its loop makes this check itself.)
      if (!this.feeding && !this.peerInRecords && this.inbound.length + this.waitingBytes > 0) {
        return this.destroy(new RecordProtocolError('peer sent TLS after its switch'));
      }
      if (side === 'server') this.sendSwitch(tls);
      this.maybeFinishSwitch();
      this.drainInbound();
    });
    // The server answers the client's SWITCH rather than sending its own at once: OpenSSL writes a TLS 1.3
    // server's session tickets after the handshake-done callback (where this runs), and they must be on the
    // wire before the server's SWITCH, since after it the client takes only records. By the time the client's
    // SWITCH has been read, the tickets are written.
    if (side === 'client') this.sendSwitch(tls);
  }

  private sendSwitch(tls: TLSSocket): void {
    tls.write(SWITCH, () => {
      this.switchSent = true;
      this.maybeFinishSwitch();
      const held = this.heldWrite;
      this.heldWrite = null;
      if (held) this._writev(held.chunks, held.cb);
    });
  }

  private maybeFinishSwitch(): void {
    if (!this.switchSent || !this.switchReceived || this.phase !== 'switching') return;
    this.phase = 'records';
    clearTimeout(this.switchTimer);
    this.switchTimer = undefined;
    const tls = this.tls;
    this.tls = null;
    this.transport = null;
    tls?.destroy();
  }

  // ---- inbound ----

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    if (this.peerInRecords && !this.switchReceived) return this.holdEarly(chunk);
    if (this.need > this.inbound.length + this.waitingBytes + chunk.length) {
      // More of a record that is still incomplete: keep the pieces and copy them once, when it is whole. (Joining
      // at every read would copy a 64 KiB record arriving in 1.4 KiB segments ~47 times over, ~1.5 MB.)
      (this.waiting ??= []).push(chunk);
      this.waitingBytes += chunk.length;
      return;
    }
    this.gather(chunk);
    try {
      if (!this.peerInRecords) this.feedTLS();
      if (this.peerInRecords) this.drainInbound();
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  /**
   * Records that arrive before TLS has delivered the peer's SWITCH are kept as they came, and joined once when it
   * has (joining each arrival to the rest copied up to MAX_EARLY_BYTES again per TCP segment).
   */
  private holdEarly(chunk: Buffer): void {
    (this.waiting ??= []).push(chunk);
    this.waitingBytes += chunk.length;
    if (this.inbound.length + this.waitingBytes > MAX_EARLY_BYTES) {
      this.destroy(new RecordProtocolError('peer sent too much before its switch'));
    }
  }

  /** Joins what arrived so far into `inbound`, copying at most once. */
  private gather(chunk?: Buffer): void {
    if (this.waiting) {
      if (chunk) this.waiting.push(chunk);
      this.inbound = Buffer.concat([this.inbound, ...this.waiting]);
    } else if (chunk) {
      this.inbound = this.inbound.length === 0 ? chunk : Buffer.concat([this.inbound, chunk]);
    }
    this.waiting = null;
    this.waitingBytes = 0;
    this.need = 0;
  }

  /** Hands whole TLS records to TLS until the peer's first record mark. */
  private feedTLS(): void {
    this.feeding = true;
    try {
      this.inbound = this.feedTLSRecords(this.inbound);
    } finally {
      this.feeding = false;
    }
  }

  /** Returns what is left: a partial TLS record, or the peer's records from the first mark on. */
  private feedTLSRecords(buf: Buffer): Buffer {
    while (buf.length > 0) {
      const type = buf[0]!;
      if (type === RECORD_MARK) {
        if (!this.sawTLS) throw new RecordProtocolError('peer sent a record before any TLS');
        // Accepted only once the handshake is done and the peer checked (switchFromTLS has run): TLS handles the
        // bytes pushed to it at once, so a peer's Finished just before its records has been handled by now.
        // Before that, anyone who can open a TCP connection could have us hold its bytes.
        if (this.phase === 'handshake') {
          throw new RecordProtocolError('peer sent a record before its TLS handshake was done');
        }
        // Held, not read, until TLS has delivered the peer's SWITCH: only then is it known who sent them.
        this.peerInRecords = true;
        break;
      }
      if (type < 20 || type > 23)
        throw new RecordProtocolError(`neither a TLS record nor a tunnel record (first byte ${type})`);
      // Checked before waiting for the rest: a TLS header after the SWITCH may announce bytes that never come.
      if (this.switchReceived) throw new RecordProtocolError('peer sent TLS after its switch');
      if (buf.length < 5) {
        this.need = 5;
        break;
      }
      const end = 5 + buf.readUInt16BE(3);
      if (end > MAX_TLS_RECORD) throw new RecordProtocolError('TLS record too long');
      if (buf.length < end) {
        this.need = end;
        break;
      }
      this.sawTLS = true;
      this.transport?.push(buf.subarray(0, end));
      buf = buf.subarray(end);
    }
    return buf.length === 0 ? EMPTY : buf;
  }

  private drainInbound(): void {
    if (!this.peerInRecords || this.destroyed) return;
    if (!this.switchReceived) {
      if (this.inbound.length + this.waitingBytes > MAX_EARLY_BYTES) {
        this.destroy(new RecordProtocolError('peer sent too much before its switch'));
      }
      return;
    }
    this.gather();
    let buf = this.inbound;
    try {
      while (buf.length > 0) {
        if (buf.length < HEADER) {
          this.need = HEADER;
          break;
        }
        if (buf[0] !== RECORD_MARK) throw new RecordProtocolError('bad record header');
        const length = buf.readUIntBE(1, 3);
        if (length < TAG || length > MAX_PLAINTEXT + TAG) throw new RecordProtocolError('bad record length');
        if (buf.length < HEADER + length) {
          this.need = HEADER + length;
          break;
        }
        const plaintext = this.open(
          buf.subarray(0, HEADER),
          buf.subarray(HEADER, HEADER + length - TAG),
          buf.subarray(HEADER + length - TAG, HEADER + length),
        );
        buf = buf.subarray(HEADER + length);
        if (!this.push(plaintext)) this.raw.pause();
      }
    } catch (err) {
      this.inbound = EMPTY;
      return void this.destroy(err as Error);
    }
    // An idle tunnel keeps no slice of a read buffer (it would pin the whole chunk): a partial record is not idle.
    this.inbound = buf.length === 0 ? EMPTY : buf;
    if (this.peerEnded) {
      if (buf.length > 0) this.destroy(new RecordProtocolError('connection ended inside a record'));
      else this.push(null);
    }
  }

  private open(header: Buffer, ciphertext: Buffer, tag: Buffer): Buffer {
    if (this.receiveSeq >= MAX_RECORDS) throw new RecordProtocolError('record sequence exhausted');
    const decipher = createDecipheriv(CIPHER, this.receive!.key, nonce(this.receive!.iv, this.receiveSeq), {
      authTagLength: TAG,
    });
    if (++this.receiveSeq % this.recordsPerKey === 0) this.receive!.key = nextKey(this.receive!.key);
    decipher.setAAD(header);
    decipher.setAuthTag(tag);
    const plaintext = decipher.update(ciphertext);
    try {
      decipher.final();
    } catch {
      throw new RecordProtocolError('record failed authentication');
    }
    return plaintext;
  }

  override _read(): void {
    if (this.raw.isPaused() && this.peerInRecords) this.raw.resume();
  }

  // ---- outbound ----

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (!this.switchSent) {
      this.heldWrite = { chunks, cb };
      return;
    }
    // The multiplexer writes a frame as header and payload: they go out as one record, without a copy.
    let remaining = 0;
    for (const c of chunks) remaining += c.chunk.length;
    let ok = true;
    let i = 0;
    let offset = 0;
    this.raw.cork();
    try {
      while (remaining > 0) {
        const length = Math.min(remaining, MAX_PLAINTEXT);
        const cipher = this.beginRecord(length);
        for (let left = length; left > 0; ) {
          const chunk = chunks[i]!.chunk;
          const take = Math.min(left, chunk.length - offset);
          this.raw.write(cipher.update(chunk.subarray(offset, offset + take)));
          left -= take;
          offset += take;
          if (offset === chunk.length) {
            i++;
            offset = 0;
          }
        }
        cipher.final();
        ok = this.raw.write(cipher.getAuthTag());
        remaining -= length;
      }
    } catch (err) {
      return cb(err as Error);
    } finally {
      this.raw.uncork();
    }
    if (ok) cb();
    else this.raw.once('drain', () => cb());
  }

  /** Writes a record's header and returns the cipher for its `length` bytes of plaintext. */
  private beginRecord(length: number) {
    if (this.sendSeq >= MAX_RECORDS) throw new RecordProtocolError('record sequence exhausted');
    const header = Buffer.allocUnsafe(HEADER);
    header[0] = RECORD_MARK;
    header.writeUIntBE(length + TAG, 1, 3);
    const cipher = createCipheriv(CIPHER, this.send!.key, nonce(this.send!.iv, this.sendSeq), { authTagLength: TAG });
    if (++this.sendSeq % this.recordsPerKey === 0) this.send!.key = nextKey(this.send!.key);
    cipher.setAAD(header);
    this.raw.write(header);
    return cipher;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.raw.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.switchTimer);
    const tls = this.tls;
    this.tls = null;
    this.transport = null;
    this.heldWrite?.cb(err ?? new RecordProtocolError('tunnel closed before its switch'));
    this.heldWrite = null;
    tls?.destroy();
    this.raw.destroy();
    cb(err);
  }
}

function nextKey(key: Buffer): Buffer {
  const next = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), REKEY_INFO, 32));
  key.fill(0);
  return next;
}

/** RFC 8446 §5.3: the 64-bit record sequence number, left-padded to 12 bytes, XORed with the direction's IV. */
function nonce(iv: Buffer, seq: number): Buffer {
  const n = Buffer.from(iv);
  n.writeUInt32BE((n.readUInt32BE(4) ^ Math.floor(seq / 2 ** 32)) >>> 0, 4);
  n.writeUInt32BE((n.readUInt32BE(8) ^ seq) >>> 0, 8);
  return n;
}
