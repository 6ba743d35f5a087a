// HeartbeatStream served straight from the HTTP/2 stream, without Connect's stream machinery. Why: every host keeps
// one open, and through Connect's handler each open stream held ~46 KiB of the auth server's heap (a dozen chained
// async generators with their promises and closures: a heap snapshot of 1,000 open streams), 450 MiB at 10,000 hosts
// (bench/heartbeat-memory.ts, bench/agents.ts; the figures are in bench/README.md).
//
// The wire protocol is Connect's streaming protocol over HTTP/2, unchanged, so clients cannot tell: the request is a
// sequence of envelopes (1 byte of flags, a 4-byte big-endian length, a HeartbeatRequest in protobuf); the answer is
// HTTP 200, then one envelope per request with a HeartbeatAck, and last an end-of-stream envelope (flag 0x02) whose
// JSON carries the error, if any, and its metadata (the Ward error code) exactly as Connect writes it. Each message
// goes through heartbeatStreamMessage (api.ts), the same function Connect's handler calls. Only binary, uncompressed
// requests come here, which is what Ward's clients send; the rest (JSON, compression) still go to Connect.
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { contentTypeStreamProto, endStreamFlag, endStreamToJson } from '@connectrpc/connect/protocol-connect';
import {
  AuthService,
  HeartbeatAckSchema,
  HeartbeatRequestSchema,
  type HeartbeatRequest,
} from '../api/gen/ward/auth/v1/auth_pb.ts';

const PATH = `/${AuthService.typeName}/${AuthService.method.heartbeatStream.name}`;
const ENVELOPE_HEADER = 5;
/** Messages read ahead of their answers before the request is paused (a host sends one per 20 s). */
const MAX_PENDING = 8;

/** True for the requests serveHeartbeatStream takes: HeartbeatStream, binary, uncompressed. */
export function isPlainHeartbeatStream(req: Http2ServerRequest): boolean {
  const encoding = req.headers['connect-content-encoding'];
  return (
    req.method === 'POST' &&
    req.url === PATH &&
    req.headers['content-type'] === contentTypeStreamProto &&
    (!encoding || encoding === 'identity')
  );
}

export interface HeartbeatStreamOptions {
  /** Throws for a caller that may not heartbeat at all: the stream then ends before any of it is read. */
  admit(socket: TLSSocket): Promise<void>;
  /** The answer to one message; throws to end the stream with that error. */
  answer(socket: TLSSocket, req: HeartbeatRequest): Promise<{ expires: string }>;
  /** Turns what answer() threw into the status the client gets (api.ts toRPCError). */
  toRPCError(err: unknown): ConnectError;
  /** Messages over this size end the stream (resource_exhausted), as Connect's readMaxBytes does. */
  maxMessageBytes: number;
  /**
   * A stream with no whole message for this long ends (deadline_exceeded): a host heartbeats every 20 s, and one
   * silent for longer than its listing lives (NODE_TTL_MS), or stopped inside a message, only holds memory.
   */
  idleMs: number;
}

function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER + data.length);
  out[0] = flags;
  out.writeUInt32BE(data.length, 1);
  out.set(data, ENVELOPE_HEADER);
  return out;
}

export function serveHeartbeatStream(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  socket: TLSSocket,
  opts: HeartbeatStreamOptions,
): void {
  res.writeHead(200, { 'content-type': contentTypeStreamProto });
  let ended = false;
  let pending = 0;
  let queue: Promise<void> = Promise.resolve();
  // Received bytes: `head` holds a whole envelope header at most; a message body's pieces wait in `pieces` and are
  // joined once, when all `need` bytes are in (joining at every 16 KiB frame re-copied a large message each time).
  let head: Buffer = Buffer.alloc(0);
  let pieces: Buffer[] = [];
  let have = 0;
  let need = -1; // the body length once the header is read
  // One timer for the stream's life, pushed back at every message.
  const idle = setTimeout(
    () => end(new ConnectError(`no heartbeat for ${opts.idleMs / 1000} s`, Code.DeadlineExceeded)),
    opts.idleMs,
  );
  idle.unref();

  const end = (err?: ConnectError) => {
    clearTimeout(idle);
    if (ended) return;
    ended = true;
    req.pause();
    res.end(envelope(endStreamFlag, Buffer.from(JSON.stringify(endStreamToJson(new Headers(), err, undefined)))));
  };
  // Resolves once the answers written so far have left (or the stream is gone): a host that stops reading them
  // holds at most MAX_PENDING answers here, as its messages are no longer read.
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  const handle = (message: HeartbeatRequest) => {
    pending++;
    if (pending >= MAX_PENDING) req.pause();
    queue = queue.then(async () => {
      if (ended) return;
      try {
        const ack = await opts.answer(socket, message);
        if (
          !ended &&
          !res.write(envelope(0, toBinary(HeartbeatAckSchema, create(HeartbeatAckSchema, { expires: ack.expires }))))
        )
          await drained();
      } catch (err) {
        end(opts.toRPCError(err));
      }
      pending--;
      if (!ended && req.isPaused() && pending < MAX_PENDING / 2) req.resume();
    });
  };

  const read = (chunk: Buffer) => {
    while (!ended && chunk.length > 0) {
      if (need < 0) {
        const take = Math.min(ENVELOPE_HEADER - head.length, chunk.length);
        head = Buffer.concat([head, chunk.subarray(0, take)]);
        chunk = chunk.subarray(take);
        if (head.length < ENVELOPE_HEADER) return;
        // Refused on the header, before any of the body is held.
        const flags = head[0]!;
        const length = head.readUInt32BE(1);
        if (flags !== 0) return end(new ConnectError(`unexpected envelope flags ${flags}`, Code.InvalidArgument));
        if (length > opts.maxMessageBytes)
          return end(
            new ConnectError(
              `message size ${length} is larger than configured readMaxBytes ${opts.maxMessageBytes}`,
              Code.ResourceExhausted,
            ),
          );
        need = length;
      }
      const take = Math.min(need - have, chunk.length);
      if (take > 0) pieces.push(chunk.subarray(0, take));
      have += take;
      chunk = chunk.subarray(take);
      if (have < need) return;
      const body = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, need);
      head = Buffer.alloc(0);
      pieces = [];
      have = 0;
      need = -1;
      let message: HeartbeatRequest;
      try {
        message = fromBinary(HeartbeatRequestSchema, body);
      } catch (err) {
        return end(new ConnectError(`cannot decode HeartbeatRequest: ${(err as Error).message}`, Code.InvalidArgument));
      }
      idle.refresh();
      handle(message);
    }
  };
  opts
    .admit(socket)
    .then(
      () => {
        if (!ended) req.on('data', read);
      },
      (err: unknown) => end(opts.toRPCError(err)),
    )
    .catch(() => req.stream.close());
  // The host closed its side: answer what is queued, then end the stream.
  req.on('end', () => {
    void queue
      .then(() =>
        end(
          need >= 0 || head.length > 0
            ? new ConnectError('the request ended inside a message', Code.InvalidArgument)
            : undefined,
        ),
      )
      .catch(() => req.stream.close());
  });
  // The host went away (reset, connection lost): nothing more is written.
  req.on('close', () => {
    ended = true;
    clearTimeout(idle);
  });
}
