// The proxy's limits on anonymous work, per source address, before anything reaches the auth server:
// sign-ins (each costs the auth server a password hash), invite and reset links, and connections passed
// through to the auth API (agents join there with a token). A refused address is audited once per burst
// (when it starts being refused), and every refusal is counted in a metric.
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Clock } from '../time/clock.ts';
import { sourceKey } from '../ratelimit/sourceaddr.ts';
import { RateLimiter, type BucketRule, type Verdict } from '../ratelimit/buckets.ts';

export const LIMIT_KINDS = ['sign_in', 'link', 'auth_connect'] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];
export type EdgeLimitRules = Record<LimitKind, BucketRule>;

const METRIC = 'ward_proxy_rate_limited_total';
const HELP = 'Requests and connections the proxy refused by its per-address rate limits';

export interface EdgeLimitsOptions {
  clock: Clock;
  log: Logger;
  /** Writes the audit event of a burst (the proxy's EmitAuditEvents); a failure is logged, the refusal stands. */
  audit?: (event: Record<string, unknown>) => Promise<unknown>;
  metrics?: Registry;
}

export class EdgeLimits {
  private readonly limiters: Record<LimitKind, RateLimiter>;
  private readonly refused?: Counter<'limit'>;

  constructor(
    rules: EdgeLimitRules,
    private readonly opts: EdgeLimitsOptions,
  ) {
    this.limiters = {
      sign_in: new RateLimiter(rules.sign_in, opts.clock),
      link: new RateLimiter(rules.link, opts.clock),
      auth_connect: new RateLimiter(rules.auth_connect, opts.clock),
    };
    const { metrics } = opts;
    // One counter per registry, whichever proxy of the process registers first.
    if (metrics) {
      this.refused =
        (metrics.getSingleMetric(METRIC) as Counter<'limit'> | undefined) ??
        new Counter({ name: METRIC, help: HELP, labelNames: ['limit'], registers: [metrics] });
    }
  }

  /** One request (or connection) of `kind` from `remoteAddress`: allowed, or how long to wait. */
  admit(kind: LimitKind, remoteAddress: string): Verdict {
    const source = sourceKey(remoteAddress);
    const verdict = this.limiters[kind].take(source);
    if (verdict.allowed) return verdict;
    this.refused?.inc({ limit: kind });
    if (verdict.burstStarted) {
      this.opts.log.warn({ limit: kind, source }, 'rate limit: refusing an address');
      const { log } = this.opts;
      this.opts
        .audit?.({ event: 'proxy.rate_limited', limit: kind, source, remote_addr: remoteAddress })
        .catch((err: unknown) => log.warn({ err: String(err), limit: kind, source }, 'rate limit not audited'));
    }
    return verdict;
  }
}
