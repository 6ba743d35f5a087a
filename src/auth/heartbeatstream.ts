// HeartbeatStream served straight from the HTTP/2 stream, without Connect's stream machinery. Why: every host keeps
// one open, and through Connect's handler each open stream held ~46 KiB of the auth server's heap (a dozen chained
// async generators with their promises and closures: a heap snapshot of 1,000 open streams), 450 MiB at 10,000 hosts
// (bench/agents.ts: auth RSS 1,231 MiB with a call per heartbeat, 1,681 MiB with streams through Connect).
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
import { AuthService, HeartbeatAckSchema, HeartbeatRequestSchema, type HeartbeatRequest } from '../api/gen/ward/auth/v1/auth_pb.ts';

const PATH = `/${AuthService.typeName}/${AuthService.method.heartbeatStream.name}`;
const ENVELOPE_HEADER = 5;
/** Messages read ahead of their answers before the request is paused (a host sends one per 20 s). */
const MAX_PENDING = 8;

/** True for the requests serveHeartbeatStream takes: HeartbeatStream, binary, uncompressed. */
export function isPlainHeartbeatStream(req: Http2ServerRequest): boolean {
  const encoding = req.headers['connect-content-encoding'];
  return req.method === 'POST' && req.url === PATH && req.headers['content-type'] === contentTypeStreamProto && (!encoding || encoding === 'identity');
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
}

function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER + data.length);
  out[0] = flags;
  out.writeUInt32BE(data.length, 1);
  out.set(data, ENVELOPE_HEADER);
  return out;
}

export function serveHeartbeatStream(req: Http2ServerRequest, res: Http2ServerResponse, socket: TLSSocket, opts: HeartbeatStreamOptions): void {
  res.writeHead(200, { 'content-type': contentTypeStreamProto });
  let ended = false;
  let pending = 0;
  let queue: Promise<void> = Promise.resolve();
  let buffered: Buffer = Buffer.alloc(0);

  const end = (err?: ConnectError) => {
    if (ended) return;
    ended = true;
    req.pause();
    res.end(envelope(endStreamFlag, Buffer.from(JSON.stringify(endStreamToJson(new Headers(), err, undefined)))));
  };
  const handle = (message: HeartbeatRequest) => {
    pending++;
    if (pending >= MAX_PENDING) req.pause();
    queue = queue.then(async () => {
      if (ended) return;
      try {
        const ack = await opts.answer(socket, message);
        if (!ended) res.write(envelope(0, toBinary(HeartbeatAckSchema, create(HeartbeatAckSchema, { expires: ack.expires }))));
      } catch (err) {
        end(opts.toRPCError(err));
      }
      pending--;
      if (!ended && req.isPaused() && pending < MAX_PENDING / 2) req.resume();
    });
  };

  const read = (chunk: Buffer) => {
    if (ended) return;
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= ENVELOPE_HEADER) {
      const flags = buffered[0]!;
      const length = buffered.readUInt32BE(1);
      if (length > opts.maxMessageBytes) return end(new ConnectError(`message size ${length} is larger than configured readMaxBytes ${opts.maxMessageBytes}`, Code.ResourceExhausted));
      if (buffered.length < ENVELOPE_HEADER + length) break;
      const body = buffered.subarray(ENVELOPE_HEADER, ENVELOPE_HEADER + length);
      buffered = buffered.subarray(ENVELOPE_HEADER + length);
      if (flags !== 0) return end(new ConnectError(`unexpected envelope flags ${flags}`, Code.InvalidArgument));
      let message: HeartbeatRequest;
      try {
        message = fromBinary(HeartbeatRequestSchema, body);
      } catch (err) {
        return end(new ConnectError(`cannot decode HeartbeatRequest: ${(err as Error).message}`, Code.InvalidArgument));
      }
      handle(message);
    }
  };
  opts.admit(socket).then(
    () => {
      if (!ended) req.on('data', read);
    },
    (err: unknown) => end(opts.toRPCError(err)),
  );
  // The host closed its side: answer what is queued, then end the stream.
  req.on('end', () => {
    void queue.then(() => end(buffered.length ? new ConnectError('the request ended inside a message', Code.InvalidArgument) : undefined));
  });
  // The host went away (reset, connection lost): nothing more is written.
  req.on('close', () => {
    ended = true;
  });
}
