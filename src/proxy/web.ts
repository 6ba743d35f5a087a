// The proxy's HTTPS API (web UI and wsh login). Bodies are size-limited and schema-checked; every
// error leaves as {error: {code, message}} with the status from the one error catalogue.
import type { IncomingMessage, ServerResponse } from 'node:http';
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

function send(res: Res, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'strict-transport-security': 'max-age=31536000',
  });
  res.end(data);
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
      send(res, 200, await route(req));
    } catch (err) {
      if (isWardError(err)) return send(res, httpStatus[err.code], { error: { code: err.code, message: err.message } });
      log.error({ err }, 'web API error');
      send(res, 500, { error: { code: 'ERR_INTERNAL', message: 'internal error in the proxy (see its log)' } });
    }
  };
}
