// The auth server's own bound on joins. RegisterUsingToken is the Auth API call that costs the server work (a token
// lookup, two certificate signatures, audit writes) without a certificate; the proxy limits only the connections each
// address opens, not the calls inside one, and an agent may dial auth directly. So every join takes a token from its
// source address's bucket (the address a proxy vouched for, connsource.ts, else the TCP peer) and one from its
// connection's. Ping, the other anonymous call, answers from memory and is not limited. A refused address is
// audited once per burst and every refusal is counted.
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Clock } from '../time/clock.ts';
import { LimitExceeded } from '../api/errors.ts';
import { RateLimiter, type BucketRule, type Verdict } from '../ratelimit/buckets.ts';
import { sourceKey } from '../ratelimit/sourceaddr.ts';

/** Joins one address may make at once, then per minute: a rack behind one NAT joins 50 hosts at once. */
export const DEFAULT_JOIN_RULE: BucketRule = { burst: 50, perMinute: 120 };
/** An agent joins once per connection (a retry at most a few times): more on one connection is a flood. */
const CONNECTION_RULE: BucketRule = { burst: 10, perMinute: 60 };

const METRIC = 'ward_auth_rate_limited_total';
const HELP = 'Auth API calls the auth server refused by its per-address and per-connection rate limits';

export interface JoinLimitsOptions {
  clock: Clock;
  log: Logger;
  /** Writes the audit event of a burst; a failure is logged, the refusal stands. */
  audit: (fields: Record<string, unknown>) => Promise<unknown>;
  metrics?: Registry;
}

export class JoinLimits {
  private readonly byAddress: RateLimiter;
  private readonly byConnection: RateLimiter;
  private readonly connectionIds = new WeakMap<object, string>();
  private nextConnectionId = 0;
  private readonly refused?: Counter<'limit'>;

  constructor(
    rule: BucketRule,
    private readonly opts: JoinLimitsOptions,
  ) {
    this.byAddress = new RateLimiter(rule, opts.clock);
    const perConnection = {
      burst: Math.min(rule.burst, CONNECTION_RULE.burst),
      perMinute: Math.min(rule.perMinute, CONNECTION_RULE.perMinute),
    };
    this.byConnection = new RateLimiter(perConnection, opts.clock);
    const { metrics } = opts;
    // One counter per registry, whichever auth listener of the process registers first.
    if (metrics) {
      this.refused =
        (metrics.getSingleMetric(METRIC) as Counter<'limit'> | undefined) ??
        new Counter({ name: METRIC, help: HELP, labelNames: ['limit'], registers: [metrics] });
    }
  }

  /** Takes one join of `clientAddr` on `connection`, or throws LimitExceeded with when to try again. */
  admitJoin(clientAddr: string, connection: object): void {
    const source = sourceKey(clientAddr);
    let verdict: Verdict = this.byAddress.take(source);
    if (verdict.allowed) verdict = this.byConnection.take(this.connectionId(connection));
    if (verdict.allowed) return;
    this.refused?.inc({ limit: 'join' });
    if (verdict.burstStarted) {
      const { log } = this.opts;
      log.warn({ limit: 'join', source }, 'rate limit: refusing joins');
      this.opts
        .audit({ limit: 'join', source, remote_addr: clientAddr })
        .catch((err: unknown) => log.warn({ err: String(err), limit: 'join', source }, 'rate limit not audited'));
    }
    throw new LimitExceeded(`too many join requests from this address: try again in ${verdict.retryAfterSeconds} s`);
  }

  private connectionId(connection: object): string {
    let id = this.connectionIds.get(connection);
    if (id === undefined) {
      id = `connection-${this.nextConnectionId++}`;
      this.connectionIds.set(connection, id);
    }
    return id;
  }
}
