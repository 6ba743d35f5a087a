// Token buckets keyed by source address: what the proxy uses to throttle anonymous work (sign-ins,
// invite links, connections to the auth API) before it reaches the auth server, and the auth server its
// joins (auth/joinlimits.ts). Pure: time comes from a Clock, and the number of addresses remembered is
// bounded (the least recently seen is forgotten first).
import type { Clock } from '../time/clock.ts';

export interface BucketRule {
  /** Requests an address may make at once, after being quiet. */
  burst: number;
  /** Requests per minute an address gets back, up to `burst`. */
  perMinute: number;
}

export type Verdict =
  | { allowed: true }
  | {
      allowed: false;
      /** Whole seconds until the next request would be allowed (HTTP Retry-After). */
      retryAfterSeconds: number;
      /** The first refusal since this address was last quiet (its bucket full): what is audited, once per burst. */
      burstStarted: boolean;
    };

interface Bucket {
  tokens: number;
  at: number;
  refusing: boolean;
}

/** 10,000 addresses cost about 1 MB; an address forgotten early only gets a fresh, full bucket. */
export const DEFAULT_MAX_ADDRESSES = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    private readonly rule: BucketRule,
    private readonly clock: Clock,
    private readonly maxAddresses = DEFAULT_MAX_ADDRESSES,
  ) {
    if (!(rule.burst >= 1) || !(rule.perMinute > 0)) throw new RangeError('a bucket needs burst >= 1, perMinute > 0');
    this.perMs = rule.perMinute / 60_000;
  }

  /** Takes one token of `key`'s bucket, or says how long to wait. */
  take(key: string): Verdict {
    const now = this.clock.now().getTime();
    const bucket = this.buckets.get(key) ?? { tokens: this.rule.burst, at: now, refusing: false };
    // Map order is recency: the first entry is the least recently seen address.
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    while (this.buckets.size > this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
    bucket.tokens = Math.min(this.rule.burst, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs);
    bucket.at = now;
    // A burst ends when the address has been quiet long enough to refill its bucket, not at the next token:
    // a flood that keeps coming is one burst, however many tokens trickle back meanwhile.
    if (bucket.tokens >= this.rule.burst) bucket.refusing = false;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    const burstStarted = !bucket.refusing;
    bucket.refusing = true;
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000));
    return { allowed: false, retryAfterSeconds, burstStarted };
  }

  /** Addresses remembered now (for tests and the metric). */
  get size(): number {
    return this.buckets.size;
  }
}
