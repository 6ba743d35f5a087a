// ward.yaml: what one `ward start` process runs. Parsed with zod at the trust boundary: an unknown key
// or a wrong type is reported with its path (auth_service.storage.type: ...) and the process stops.
import { readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parse as parseYAML } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../time/duration.ts';
import { BadParameter } from '../api/errors.ts';
import { describeZodError, nameSchema } from '../api/types.ts';
import { DEFAULT_MAX_STREAMS_PER_USER, muxLimits } from '../tunnel/protocol.ts';

const duration = z.string().refine((s) => {
  try {
    return parseDuration(s) > 0;
  } catch {
    return false;
  }
}, 'must be a duration such as 15m or 1h');
/**
 * Host certificates: at least 20 s (a host renews with a third left, and needs a few seconds for that, retries
 * included); at most a year, and the TLS CA (ten years) must outlive them.
 */
const HOST_CERT_TTL_MIN_MS = 20_000;
const HOST_CERT_TTL_MAX_MS = 365 * 86_400_000;
const hostCertTTL = z.string().refine((s) => {
  try {
    const ms = parseDuration(s);
    return ms >= HOST_CERT_TTL_MIN_MS && ms <= HOST_CERT_TTL_MAX_MS;
  } catch {
    return false;
  }
}, 'must be a duration from 20s to 365d, such as 30d or 8760h');
const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'must be host:port');
/** Several addresses to fail over between: `a:3025,b:3025` or a YAML list; kept as the comma-joined text. */
const hostPortList = z.union([
  z
    .string()
    .regex(
      /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}(,(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5})*$/,
      'must be host:port[,host:port...]',
    ),
  z
    .array(hostPort)
    .min(1)
    .max(16)
    .transform((list) => list.join(',')),
]);

const storageSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('sqlite'), path: z.string().optional() }),
  z.strictObject({ type: z.literal('postgres'), conn_string: z.string().min(1) }),
]);

const bucketSchema = z.strictObject({
  burst: z.number().int().min(1).max(1_000_000),
  per_minute: z.number().positive().max(6_000_000),
});
/**
 * Sane for people and hosts behind one address (a wsh login is one sign-in, a web sign-in with a security key two):
 * a password guesser gets 30 tries a minute per address, while the lockout stops guessing one user sooner.
 */
export const DEFAULT_RATE_LIMITS = {
  sign_in: { burst: 10, per_minute: 30 },
  link: { burst: 10, per_minute: 30 },
  auth_connect: { burst: 100, per_minute: 600 },
};
/** A rack of hosts behind one NAT may join at once; the same as auth/joinlimits.ts DEFAULT_JOIN_RULE. */
export const DEFAULT_AUTH_RATE_LIMITS = { join: { burst: 50, per_minute: 120 } };
const rateLimitsSchema = z.strictObject({
  sign_in: bucketSchema.default(DEFAULT_RATE_LIMITS.sign_in),
  link: bucketSchema.default(DEFAULT_RATE_LIMITS.link),
  auth_connect: bucketSchema.default(DEFAULT_RATE_LIMITS.auth_connect),
});

export const configSchema = z.strictObject({
  version: z.literal('v1').default('v1'),
  ward: z
    .strictObject({
      data_dir: z.string().optional(),
      /** Where agents of a process without auth_service reach the cluster: proxies or auth servers (failover list). */
      auth_server: hostPortList.optional(),
      /** Join token for the first start of an agent; the identity it gets is kept in the data dir. */
      join_token: z.string().max(256).optional(),
      /** The cluster's CA pin (wctl status), checked before the token is sent. */
      ca_pin: z
        .string()
        .regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>')
        .optional(),
      log: z
        .strictObject({ severity: z.enum(['debug', 'info', 'warn', 'error']).default('info') })
        .default({ severity: 'info' }),
      /** Prometheus metrics (/metrics) and /healthz on this address; off when unset. Keep it private. */
      diag_addr: hostPort.optional(),
    })
    .default({ log: { severity: 'info' } }),
  auth_service: z
    .strictObject({
      enabled: z.boolean().default(true),
      cluster_name: nameSchema.optional(),
      listen_addr: hostPort.default('127.0.0.1:3025'),
      storage: storageSchema.default({ type: 'sqlite' }),
      lockout: z
        .strictObject({ max_attempts: z.number().int().min(1).max(100).default(5), duration: duration.default('15m') })
        .default({ max_attempts: 5, duration: '15m' }),
      /** What a login needs besides the password: off, otp (TOTP), webauthn (security keys) or on (either). */
      second_factor: z.enum(['off', 'otp', 'webauthn', 'on']).default('off'),
      /** WebAuthn's relying party: the proxies' host name (default: proxy_service.public_addr's, else localhost). */
      webauthn: z.strictObject({ rp_id: z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a host name') }).optional(),
      /**
       * How long host certificates live (agents', the proxies', the auth server's own); each is renewed when a third
       * of it is left. Under a minute only makes sense in tests.
       */
      host_cert_ttl: hostCertTTL.default('365d'),
      /** Per client address, at the auth server itself: joins (RegisterUsingToken), also those through a proxy. */
      rate_limits: z
        .strictObject({ join: bucketSchema.default(DEFAULT_AUTH_RATE_LIMITS.join) })
        .default(DEFAULT_AUTH_RATE_LIMITS),
    })
    .default({
      enabled: true,
      listen_addr: '127.0.0.1:3025',
      storage: { type: 'sqlite' },
      lockout: { max_attempts: 5, duration: '15m' },
      second_factor: 'off',
      host_cert_ttl: '365d',
      rate_limits: DEFAULT_AUTH_RATE_LIMITS,
    }),
  proxy_service: z
    .strictObject({
      /**
       * Per-address token buckets for anonymous work, applied by the proxy before the auth server sees it: sign-ins
       * (wsh login, the web UI, a security key's first step, adding a device), invite/reset links, and TLS
       * connections passed through to the auth API (agents joining with a token, wsh and wctl through the proxy).
       */
      rate_limits: rateLimitsSchema.default(DEFAULT_RATE_LIMITS),
      enabled: z.boolean().default(true),
      listen_addr: hostPort.default('0.0.0.0:3080'),
      /** Names clients use to reach the proxy; they go into its certificate. */
      public_addr: z.array(hostPort).default([]),
      /** A web UI session ends after this long without a request (it ends with its certificates anyway). */
      web_idle_timeout: duration.default('30m'),
      /** Connections one user may have open at once through one node's reverse tunnel (docs/tunnel.md). */
      tunnel_streams_per_user: z.number().int().min(1).max(muxLimits.maxStreams).default(DEFAULT_MAX_STREAMS_PER_USER),
    })
    .default({
      rate_limits: DEFAULT_RATE_LIMITS,
      enabled: true,
      listen_addr: '0.0.0.0:3080',
      public_addr: [],
      web_idle_timeout: '30m',
      tunnel_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
    }),
  ssh_service: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Name shown in listings and used to reach it (default: this machine's host name). */
      hostname: nameSchema.optional(),
      listen_addr: hostPort.default('0.0.0.0:3022'),
      /** No inbound port: reached through a reverse tunnel to the proxy at ward.auth_server. */
      tunnel: z.boolean().default(false),
      /** Interactive sessions are always recorded: node uploads when they end, node-sync streams live. */
      recording: z.enum(['node', 'node-sync']).default('node'),
      labels: z.record(z.string().max(256), z.string().max(1024)).default({}),
      /** Dynamic labels: the trimmed output of a command, re-run every `period`. */
      commands: z
        .array(
          z.strictObject({
            name: z.string().min(1).max(256),
            command: z.array(z.string()).min(1),
            period: duration.default('1m'),
          }),
        )
        .max(32)
        .default([]),
    })
    .default({
      enabled: true,
      listen_addr: '0.0.0.0:3022',
      tunnel: false,
      recording: 'node',
      labels: {},
      commands: [],
    }),
});

export type WardConfig = z.infer<typeof configSchema>;

/** A token bucket per address: `burst` at once after a quiet spell, then `per_minute`. */
export function edgeLimitRules(limits: WardConfig['proxy_service']['rate_limits']) {
  const rule = (b: { burst: number; per_minute: number }) => ({ burst: b.burst, perMinute: b.per_minute });
  return { sign_in: rule(limits.sign_in), link: rule(limits.link), auth_connect: rule(limits.auth_connect) };
}

export function defaultDataDir(): string {
  return join(homedir(), '.ward');
}

export function defaultClusterName(): string {
  return (hostname().split('.')[0] || 'ward').replace(/[^A-Za-z0-9._-]/g, '-');
}

/** Reads and validates ward.yaml; with no path, the home-lab defaults. */
export function loadConfig(path?: string): WardConfig {
  if (!path) return configSchema.parse({});
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BadParameter(
      `cannot read config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let data: unknown;
  try {
    data = parseYAML(text, { maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw new BadParameter(`${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const result = configSchema.safeParse(data);
  if (!result.success) throw new BadParameter(`${path}: ${describeZodError(result.error)}`);
  return result.data;
}

export const SAMPLE_CONFIG = `# ward.yaml: which services this process runs, and how.
# Validate by starting: a wrong key or type is reported with its path.
version: v1
ward:
  # Where the SQLite backend, the local admin identity and keys live.
  data_dir: /var/lib/ward
  log:
    severity: info        # debug | info | warn | error
  # diag_addr: 127.0.0.1:3000   # Prometheus /metrics and /healthz (off unless set)

auth_service:
  enabled: true
  cluster_name: home      # fixed at first start: the CAs are issued for it
  listen_addr: 127.0.0.1:3025
  storage:
    type: sqlite          # or: {type: postgres, conn_string: "postgres://ward@db/ward"}
  second_factor: off      # off | otp (TOTP codes, wsh mfa add) | webauthn (security keys, web UI) | on (either)
  host_cert_ttl: 365d     # hosts' certificates (20s-365d); every host renews its own when a third is left
  # webauthn: {rp_id: ward.example.com}   # security keys' site: the proxies' host name (default: public_addr's)
  lockout:
    max_attempts: 5       # failed sign-ins in a row of one user from one address: then that address waits
    duration: 15m
  rate_limits:            # per client address (through a proxy: the address it vouches for), at the auth server
    join: {burst: 50, per_minute: 120}          # joins with a token (RegisterUsingToken); also 10 per connection

proxy_service:
  enabled: true
  listen_addr: 0.0.0.0:3080
  # Names users reach the proxy by (they go into its certificate).
  public_addr: ["ward.example.com:3080"]
  web_idle_timeout: 30m   # the web UI signs out after this long without a request
  rate_limits:            # per client address, before the auth server sees anything (429 with Retry-After)
    sign_in: {burst: 10, per_minute: 30}        # wsh login, web sign-in, security key step one, adding a device
    link: {burst: 10, per_minute: 30}           # invite and reset links
    auth_connect: {burst: 100, per_minute: 600} # connections to the auth API through the proxy (joins, wsh, wctl)

ssh_service:              # the Node Service: an SSH server that checks Ward certificates
  enabled: true
  listen_addr: 0.0.0.0:3022
  tunnel: false           # true: no inbound port; dial the proxy at ward.auth_server instead
  recording: node         # every interactive session is recorded; node-sync streams it to auth live
  labels: {env: lab}
  commands:               # dynamic labels: a command's output, refreshed every period
    - {name: kernel, command: [uname, -r], period: 1h}

# An agent on another host runs only the node, and joins with a token:
#   ward:
#     auth_server: ward.example.com:3080
#     join_token: <from wctl tokens add --type node>
#     ca_pin: sha256:<from wctl status>
#   auth_service: {enabled: false}
#   proxy_service: {enabled: false}
#   ssh_service: {enabled: true, tunnel: true, labels: {env: prod}}
# (auth_server may list several proxies, a:3080,b:3080 or a YAML list: calls fail over between them.)
#
# A standalone proxy (high availability: several proxies, several auth servers on PostgreSQL):
#   ward:
#     auth_server: [auth1.example.com:3025, auth2.example.com:3025]
#     join_token: <from wctl tokens add --type proxy>
#     ca_pin: sha256:<from wctl status>
#   auth_service: {enabled: false}
#   proxy_service: {listen_addr: 0.0.0.0:3080, public_addr: [ward.example.com:3080]}
#   ssh_service: {enabled: false}
`;
