// A host's presence in the cluster: its node or proxy resource, refreshed every HEARTBEAT_INTERVAL_MS so that the
// auth server keeps listing it (it lists a host for NODE_TTL_MS after the last heartbeat).
//
// Why a stream: a heartbeat sent as its own call costs the auth server a new HTTP/2 stream, its headers and the
// caller read again: ~0.37 ms of its CPU before any Ward code runs (a Ping, bench/profile-api.ts), more than storing
// the heartbeat. So each host keeps one HeartbeatStream call open and sends a message per heartbeat, and the auth
// server answers each in order (bench/agents.ts measures it with 10,000 hosts; the figures are in bench/README.md).
// The stream is re-opened when it breaks (backoff with jitter, so that hosts do not come back all at once after an
// auth server restarts), and the presence is sent first on every new stream. An auth server that does not know
// HeartbeatStream (older) gets one Heartbeat call per beat, as before, for STREAM_AGAIN_MS.
import { setTimeout as sleep } from 'node:timers/promises';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { fromRPCError, type AuthClient } from '../api/client.ts';
import type { Node, Proxy } from '../api/types.ts';

/** Heartbeats come this often; the auth server lists a host for 90 s after the last one. */
export const HEARTBEAT_INTERVAL_MS = 20_000;
/** A heartbeat not answered by then means the stream is dead (a partition looks like this): it is re-opened. */
const ANSWER_TIMEOUT_MS = 15_000;
/**
 * Waits before re-opening a broken stream: a random time up to this, doubling to RETRY_MAX_MS while it fails. When
 * an auth server restarts, all of its hosts' streams break at once. Up to 2 s and doubling to 60 s, 10,000 hosts
 * came back in 161-170 s (bench/agents.ts --restart-auth), past the 90 s a host stays listed: their first tries
 * came in one burst that failed, and the waits then grew long. Spread over 10 s, and never more than 30 s apart
 * (three tries within those 90 s), they were all back in 80 s (one run).
 */
const RETRY_FIRST_MS = 10_000;
const RETRY_MAX_MS = 30_000;
/** After an auth server without HeartbeatStream, a host makes calls this long before trying a stream again. */
const STREAM_AGAIN_MS = 10 * 60_000;

export interface HeartbeatsOptions {
  auth: AuthClient;
  /** The host's presence as it is now, asked at every heartbeat. */
  presence: () => Node | Proxy;
  log: Logger;
  intervalMs?: number;
  /** How long an answer may take before the stream is taken for dead (default ANSWER_TIMEOUT_MS). */
  answerTimeoutMs?: number;
  /** Told of every heartbeat sent on a stream: how long its answer took, or why it failed (benchmarks, metrics). */
  onAnswer?: (ms: number, err?: Error) => void;
  /** The first wait before re-opening a broken stream, at most (default RETRY_FIRST_MS; tests shorten it). */
  retryFirstMs?: number;
}

export interface Heartbeats {
  /** Sends the presence now (it changed); resolves once the auth server stored it, or the attempt failed (logged). */
  beat(): Promise<void>;
  /** Moves to a new stream at once (a renewed certificate: the open one would be refused when the old one ends). */
  reconnect(): void;
  close(): void;
}

type Request = { resource: { json: string } };
type Settle = (err?: Error) => void;
/** Why a stream was ended on purpose, to be re-opened at once. */
const RECONNECT = new Error('reconnect');

/** An open stream: what is sent on it, and the heartbeats waiting for their answers, oldest first. */
interface OpenStream {
  send(req: Request): void;
  waiting: Settle[];
  abort: AbortController;
}

/** Starts heartbeating; resolves once the first heartbeat was stored, or its attempt failed (logged). */
export async function startHeartbeats(opts: HeartbeatsOptions): Promise<Heartbeats> {
  const { auth, log } = opts;
  const request = (): Request => ({ resource: { json: JSON.stringify(opts.presence()) } });
  let closed = false;
  let unaryOnly = false;
  let open: OpenStream | undefined;
  const closing = new AbortController();
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));

  const beatOn = (stream: OpenStream): Promise<void> =>
    new Promise((resolve) => {
      const sent = performance.now();
      // DeadlineExceeded, not a plain abort: with several auth addresses, the next stream goes to another one.
      const timeoutMs = opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
      const timer = setTimeout(
        () =>
          stream.abort.abort(
            new ConnectError(`no answer to a heartbeat in ${timeoutMs / 1000} s`, Code.DeadlineExceeded),
          ),
        timeoutMs,
      );
      stream.waiting.push((err) => {
        clearTimeout(timer);
        opts.onAnswer?.(performance.now() - sent, err);
        resolve();
      });
      stream.send(request());
    });

  const unaryBeat = () =>
    auth.heartbeat(request()).then(
      () => undefined,
      (err: Error) => log.warn({ err: err.message }, 'heartbeat failed; will retry'),
    );

  /** One stream, from opening to its end; resolves with why it ended. */
  const runStream = async (): Promise<unknown> => {
    const outbox = queue<Request>();
    const stream: OpenStream = { send: outbox.push, waiting: [], abort: new AbortController() };
    const stop = () => stream.abort.abort();
    closing.signal.addEventListener('abort', stop);
    open = stream;
    void beatOn(stream);
    let ended: unknown = new ConnectError('the auth server ended the heartbeat stream', Code.Unavailable);
    try {
      for await (const _answer of auth.heartbeatStream(outbox, { signal: stream.abort.signal, timeoutMs: 0 })) {
        stream.waiting.shift()?.();
        markStarted();
      }
    } catch (err) {
      ended = stream.abort.signal.aborted ? stream.abort.signal.reason : err;
    } finally {
      open = undefined;
      outbox.end();
      closing.signal.removeEventListener('abort', stop);
      const failed = new Error('heartbeat stream ended');
      for (const settle of stream.waiting.splice(0)) settle(failed);
    }
    return ended;
  };

  const keepStreamOpen = async () => {
    const retryFirstMs = opts.retryFirstMs ?? RETRY_FIRST_MS;
    let retryMs = retryFirstMs;
    while (!closed) {
      const opened = Date.now();
      const err = await runStream();
      if (closed) return;
      if (err === RECONNECT) continue;
      if (err instanceof ConnectError && err.code === Code.Unimplemented) {
        // For a while, not for good: with several auth addresses, one not yet upgraded in a rolling upgrade
        // would otherwise keep every host that reached it on calls until the host restarts.
        log.info(
          { retry_stream_in_ms: STREAM_AGAIN_MS },
          'the auth server predates heartbeat streams: one heartbeat call per interval instead',
        );
        unaryOnly = true;
        await unaryBeat();
        markStarted();
        await sleep(STREAM_AGAIN_MS, undefined, { signal: closing.signal }).catch(() => undefined);
        unaryOnly = false;
        continue;
      }
      markStarted();
      // A stream that lived through a heartbeat interval was healthy: the next attempt starts from the first wait.
      if (Date.now() - opened > (opts.intervalMs ?? HEARTBEAT_INTERVAL_MS)) retryMs = retryFirstMs;
      const wait = Math.random() * retryMs;
      log.warn(
        { err: fromRPCError(err).message, retry_in_ms: Math.round(wait) },
        'heartbeat stream broken; will reconnect',
      );
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      await sleep(wait, undefined, { signal: closing.signal }).catch(() => undefined); // close() cuts the wait short
    }
  };

  const beat = async (): Promise<void> => {
    if (closed) return;
    if (unaryOnly) return unaryBeat();
    // With no stream open, the next one sends the presence first.
    if (open) await beatOn(open);
  };
  const timer = setInterval(() => void beat(), opts.intervalMs ?? HEARTBEAT_INTERVAL_MS);
  timer.unref();
  void keepStreamOpen();
  await started;

  return {
    beat,
    reconnect: () => open?.abort.abort(RECONNECT),
    close: () => {
      closed = true;
      clearInterval(timer);
      closing.abort();
    },
  };
}

/** An async iterable fed by push(); ends after end(). */
function queue<T>(): AsyncIterable<T> & { push(item: T): void; end(): void } {
  const items: T[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  return {
    push: (item) => {
      items.push(item);
      poke();
    },
    end: () => {
      ended = true;
      poke();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (items.length) yield items.shift()!;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}
