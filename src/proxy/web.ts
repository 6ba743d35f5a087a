// The proxy's HTTPS API (web UI and wsh login). Bodies are size-limited and schema-checked; every
// error leaves as {error: {code, message}} with the status from the one error catalogue.
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Logger } from 'pino';
import type { AuthClient } from '../api/client.ts';
import { BadParameter, LimitExceeded, NotFound, httpStatus, isWardError } from '../api/errors.ts';
import { describeZodError } from '../api/types.ts';
import { WEBAPI_LOGIN, WEBAPI_PING, loginRequestSchema, type CertsResponse } from '../api/webapi.ts';

const MAX_BODY = 64 * 1024;

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

async function readJSON(req: Req): Promise<unknown> {
  if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
    throw new BadParameter('expected a JSON body (Content-Type: application/json)');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new LimitExceeded('request body too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadParameter('request body is not valid JSON');
  }
}

function send(req: Req, res: Res, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  // A refusal may come before the client has sent its whole body (one over MAX_BODY, say). We stop
  // reading it, so the client must learn that we will not: HTTP/1.1 closes the connection after the
  // answer; HTTP/2 resets the stream with NO_ERROR once the answer is out (RFC 9113 §8.1). Otherwise an
  // HTTP/2 client (curl) waits for the end of a stream that never ends, and holds it open.
  const unread = !req.complete;
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'strict-transport-security': 'max-age=31536000',
    ...(unread && req.httpVersionMajor < 2 ? { connection: 'close' } : {}),
  });
  res.end(data);
  // close() right after end(): it waits for the answer to be written, then resets. (Waiting for 'finish'
  // is too late: Node has reset the stream with CANCEL by then, which curl never notices.)
  if (unread && 'stream' in res) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

export function webHandler(auth: AuthClient, log: Logger) {
  const routes: Record<string, (req: Req) => Promise<unknown>> = {
    [`GET ${WEBAPI_PING}`]: async () => {
      const ping = await auth.ping({});
      return { cluster_name: ping.clusterName, server_version: ping.serverVersion };
    },
    [`POST ${WEBAPI_LOGIN}`]: async (req) => {
      const parsed = loginRequestSchema.safeParse(await readJSON(req));
      if (!parsed.success) throw new BadParameter(`invalid login request: ${describeZodError(parsed.error)}`);
      const body = parsed.data;
      const certs = await auth.authenticateUser({
        user: body.user,
        password: body.password,
        sshPublicKey: body.ssh_public_key,
        tlsPublicKey: body.tls_public_key,
        ttlSeconds: body.ttl_seconds,
        clientAddr: req.socket.remoteAddress ?? '',
      });
      return {
        ssh_cert: certs.sshCert,
        tls_cert: certs.tlsCert,
        tls_cas: certs.tlsCas,
        ssh_host_cas: certs.sshHostCas,
        cluster_name: certs.clusterName,
        ttl_seconds: certs.ttlSeconds,
      } satisfies CertsResponse;
    },
  };
  return async (req: Req, res: Res) => {
    const path = (req.url ?? '/').split('?')[0];
    try {
      const route = routes[`${req.method} ${path}`];
      if (!route) throw new NotFound(`no such endpoint: ${req.method} ${path}`);
      send(req, res, 200, await route(req));
    } catch (err) {
      if (isWardError(err)) return send(req, res, httpStatus[err.code], { error: { code: err.code, message: err.message } });
      log.error({ err }, 'web API error');
      send(req, res, 500, { error: { code: 'ERR_INTERNAL', message: 'internal error in the proxy (see its log)' } });
    }
  };
}
