// connect-node's HTTP/2 keep-alive, which every long-lived Auth API client relies on (client.ts: pingIntervalMs),
// patched in patches/@connectrpc+connect-node+2.1.2.patch. A PING that goes unanswered destroys the session, and
// Node reports the error on the session only once its socket has closed. A call made in between moves the session
// manager to a new connection and takes its listeners off the old one, so that error had no listener and ended the
// process: 10,000 simulated agents sharing two cores with a proxy restart lost a whole worker process to it
// (bench/agents.ts --restart-proxy). The test puts a call in that gap, on a real HTTP/2 server behind a relay
// that stops passing the server's bytes (so the PING answer never comes).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Http2SessionManager } from '@connectrpc/connect-node';

let server: http2.Http2Server;
let relay: net.Server;
/** The relay's connections, in order; `held` ones stop passing what the server sends. */
const held = new Set<number>();
let connections = 0;

before(async () => {
  server = http2.createServer();
  // Every request is answered at once and left open, as a server stream is.
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
  });
  server.on('sessionError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const serverPort = (server.address() as net.AddressInfo).port;
  relay = net.createServer((client) => {
    const n = connections++;
    const upstream = net.connect(serverPort, '127.0.0.1');
    client.pipe(upstream);
    upstream.on('data', (d: Buffer) => held.has(n) || client.write(d));
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
});

after(async () => {
  server.close();
  relay.close();
});

describe('Auth API client keep-alive (connect-node, patched)', () => {
  it('survives a call made between a PING timeout and the old session reporting it', async () => {
    const uncaught: Error[] = [];
    const onUncaught = (err: Error) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const manager = new Http2SessionManager(`http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`, {
        pingIntervalMs: 50,
        pingTimeoutMs: 100,
      });
      const first = await manager.request('POST', '/first', {}, {});
      first.on('error', () => undefined);
      await once(first, 'response');
      // From now on nothing comes back on this connection: the next PING times out and destroys the session.
      held.add(connections - 1);
      const session = first.session!;
      const destroy = session.destroy.bind(session);
      const second = new Promise<http2.ClientHttp2Stream>((resolve, reject) => {
        session.destroy = ((...args: Parameters<typeof session.destroy>) => {
          destroy(...args);
          // The gap: the session is destroyed, its error not yet emitted. A call now needs a new connection.
          manager.request('POST', '/second', {}, {}).then(resolve, reject);
        }) as typeof session.destroy;
      });
      const stream = await second;
      stream.on('error', () => undefined);
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(headers[':status'], 200, 'the call after the timeout went out on a new connection');
      assert.ok(session.destroyed);
      // Long enough for the old session's error to have been emitted.
      await new Promise((r) => setTimeout(r, 200));
      stream.close();
      manager.abort();
      assert.deepEqual(
        uncaught.map((e) => e.message),
        [],
      );
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
