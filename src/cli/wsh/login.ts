// wsh login: password over the proxy's HTTPS API → a fresh key pair, an SSH certificate and an X.509
// certificate, stored under WSH_HOME. The proxy must first prove it belongs to the pinned cluster CA.
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { AccessDenied, BadParameter, ConnectionProblem, errorFromCode } from '../../api/errors.ts';
import { generateClientKeys } from '../../crypto/clientkeys.ts';
import { splitAddr } from '../../api/client.ts';
import {
  WEBAPI_LOGIN,
  WEBAPI_PING,
  certsSchema,
  errorSchema,
  pingSchema,
  type CertsResponse,
  type LoginRequest,
} from '../../api/webapi.ts';
import { confirm, isInteractive, readSecret, readStdinLine } from '../prompt.ts';
import { fetchProxyCA, proxyTLSOptions } from '../../api/trust.ts';
import { pinCA, pinnedCA, saveLogin } from './profile.ts';
import { fingerprintSPKI } from '../../api/certinfo.ts';

export interface LoginOptions {
  proxy: string;
  user: string;
  ttlMs: number;
  passwordStdin: boolean;
  /** Read the second-factor code from standard input (the line after the password with --password-stdin). */
  otpStdin?: boolean;
  insecure: boolean;
  caPin?: string;
}

/** Returns the CA to trust the proxy by, after the checks above; undefined = public CA. */
async function trustProxy(opts: LoginOptions, warn: (s: string) => void): Promise<string | undefined> {
  if (opts.insecure) {
    warn("WARNING: --insecure: the proxy's certificate is not checked. Use it only in a home lab.\n");
    return undefined;
  }
  const seen = await fetchProxyCA(opts.proxy);
  const pinned = pinnedCA(opts.proxy);
  const wanted = opts.caPin ?? pinned?.pin;
  // A CA the cluster named at the last login through this proxy counts as pinned: a TLS CA rotation's new one.
  const known = opts.caPin ? [opts.caPin] : [pinned?.pin, ...(pinned?.cluster_pins ?? [])];
  if (wanted) {
    if (!known.includes(seen.pin)) {
      throw new AccessDenied(
        `the proxy's certificate authority is ${seen.pin}, not the expected ${wanted}: someone may be ` +
          `intercepting the connection` +
          (opts.caPin
            ? ''
            : " (if the cluster's TLS CA was rotated, log in with --ca-pin from `wctl status`; " +
              `if the cluster was rebuilt, remove ${opts.proxy} from known_proxies.json under WSH_HOME)`),
      );
    }
  } else if (seen.publiclyTrusted) {
    return undefined;
  } else if (isInteractive() && !opts.passwordStdin) {
    warn(`The proxy ${opts.proxy} presents a certificate authority that is not yet trusted:\n  ${seen.pin}\n`);
    warn('Compare it with the CA pin that `wctl status` prints on the auth server.\n');
    if (!(await confirm('Trust this cluster?'))) throw new AccessDenied('the proxy was not trusted');
  } else {
    throw new AccessDenied(
      `cannot verify the proxy ${opts.proxy}: its certificate authority ${seen.pin} is not pinned. ` +
        'Pass --ca-pin with the pin from `wctl status` (or --insecure in a home lab).',
    );
  }
  pinCA(opts.proxy, seen);
  return seen.caPem;
}

function post(proxy: string, path: string, body: unknown, tlsOptions: https.RequestOptions): Promise<unknown> {
  return request(proxy, 'POST', path, body, tlsOptions);
}

const REQUEST_TIMEOUT_MS = 30_000;

function request(
  proxy: string,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  tlsOptions: https.RequestOptions,
): Promise<unknown> {
  const [host, port] = splitAddr(proxy);
  const data = method === 'POST' ? JSON.stringify(body) : '';
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host,
        port,
        path,
        method,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
        ...tlsOptions,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 1024 * 1024) req.destroy(new ConnectionProblem('the proxy sent an over-long answer'));
          else chunks.push(c);
        });
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(
              new ConnectionProblem(`the proxy answered ${res.statusCode} with something that is not JSON`),
            );
          }
          if (res.statusCode === 200) return resolve(json);
          const err = errorSchema.safeParse(json);
          reject(
            err.success
              ? errorFromCode(err.data.error.code, err.data.error.message)
              : new ConnectionProblem(`the proxy answered ${res.statusCode}`),
          );
        });
      },
    );
    // The whole exchange, handshake included: a socket's idle timeout let a server that accepts and says
    // nothing hold `wsh login` for a minute.
    const timer = setTimeout(
      () => req.destroy(new ConnectionProblem(`the proxy at ${proxy} did not answer in ${REQUEST_TIMEOUT_MS / 1000}s`)),
      REQUEST_TIMEOUT_MS,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err) =>
      reject(
        err instanceof Error && 'code' in err && !(err as { code?: unknown }).code?.toString().startsWith('ERR_')
          ? new ConnectionProblem(`cannot reach the proxy at ${proxy}: ${(err as NodeJS.ErrnoException).code}`)
          : err,
      ),
    );
    req.end(data);
  });
}

export async function login(
  opts: LoginOptions,
  warn: (s: string) => void,
): Promise<{ certs: CertsResponse; dir: string }> {
  if (!opts.user) throw new BadParameter('--user is required');
  const proxyCA = await trustProxy(opts, warn);
  const tls = proxyTLSOptions(proxyCA, opts.insecure);
  const ping = pingSchema.safeParse(await request(opts.proxy, 'GET', WEBAPI_PING, undefined, tls));
  const needsSecondFactor = ping.success && ping.data.second_factor !== 'off';
  // Security keys need a browser here (WebAuthn is bound to the proxy's web origin): fail before the password is asked.
  if (ping.success && ping.data.second_factor === 'webauthn') {
    throw new BadParameter(
      'this cluster takes security keys only (second_factor: webauthn) and wsh login takes TOTP codes only: sign ' +
        'in with the web UI',
    );
  }
  // Standard input holds the password (--password-stdin), then the code (--otp-stdin), one per line.
  const stdinLines = opts.passwordStdin || opts.otpStdin ? readFileSync(0, 'utf8').split(/\r?\n/) : [];
  const password = opts.passwordStdin
    ? readStdinLine('password', stdinLines.shift() ?? '')
    : await readSecret(`Password for ${opts.user}: `);
  let secondFactor: string | undefined;
  if (needsSecondFactor) {
    if (opts.otpStdin) secondFactor = readStdinLine('second-factor code', stdinLines.shift() ?? '');
    else if (!process.stdin.isTTY || opts.passwordStdin) {
      throw new BadParameter(
        'this cluster needs a second factor: a second-factor code needed: run in a terminal or use --otp-stdin',
      );
    } else
      secondFactor = await readSecret(`Second-factor code for ${opts.user} (authenticator app, or a recovery code): `);
  }
  const keys = generateClientKeys(opts.user);
  const loginRequest: LoginRequest = {
    user: opts.user,
    password,
    ssh_public_key: keys.sshPublicKey,
    tls_public_key: keys.tlsPublicKey,
    ttl_seconds: Math.round(opts.ttlMs / 1000),
    ...(secondFactor ? { second_factor: secondFactor.trim() } : {}),
  };
  const answer = await post(opts.proxy, WEBAPI_LOGIN, loginRequest, tls);
  const parsed = certsSchema.safeParse(answer);
  if (!parsed.success) throw new ConnectionProblem('the proxy sent a malformed login answer');
  const certs = parsed.data;
  // The CAs the cluster trusts now, over a connection the pinned CA verified: a rotation's new CA is pinned too.
  if (proxyCA) {
    const clusterPins = certs.tls_cas.map((pem) => fingerprintSPKI(pem));
    pinCA(opts.proxy, { pin: fingerprintSPKI(proxyCA), caPem: proxyCA, cluster_pins: clusterPins });
  }
  const dir = saveLogin(
    { proxy: opts.proxy, user: opts.user, cluster: certs.cluster_name, insecure: opts.insecure, proxy_ca: proxyCA },
    {
      sshPrivateKey: keys.sshPrivateKey,
      sshCert: certs.ssh_cert,
      tlsKey: keys.tlsKey,
      tlsCert: certs.tls_cert,
      tlsCAs: certs.tls_cas,
      sshHostCAs: certs.ssh_host_cas,
    },
  );
  return { certs, dir };
}
