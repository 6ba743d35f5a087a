import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../time/clock.ts';
import { RateLimiter } from './buckets.ts';

const takeN = (limiter: RateLimiter, key: string, n: number) =>
  Array.from({ length: n }, () => limiter.take(key).allowed);

describe('per-address token buckets', () => {
  it('allows a burst, then refuses with the wait until the next token', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ burst: 3, perMinute: 6 }, clock);
    assert.deepEqual(takeN(limiter, 'a', 3), [true, true, true]);
    const refused = limiter.take('a');
    assert.deepEqual(refused, { allowed: false, retryAfterSeconds: 10, burstStarted: true });
    clock.advance(4_000);
    assert.deepEqual(limiter.take('a'), { allowed: false, retryAfterSeconds: 6, burstStarted: false });
  });

  it('gives tokens back over time, never more than the burst', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ burst: 2, perMinute: 60 }, clock);
    takeN(limiter, 'a', 2);
    clock.advance(1_000);
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, false);
    clock.advance(3_600_000);
    assert.deepEqual(takeN(limiter, 'a', 3), [true, true, false]);
  });

  it('keeps one bucket per address: one address refused does not refuse another', () => {
    const limiter = new RateLimiter({ burst: 1, perMinute: 1 }, new FakeClock());
    assert.equal(limiter.take('127.0.0.2').allowed, true);
    assert.equal(limiter.take('127.0.0.2').allowed, false);
    assert.equal(limiter.take('127.0.0.1').allowed, true);
  });

  it('reports the start of a burst once, however many tokens trickle back, again once the address was quiet', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ burst: 2, perMinute: 60 }, clock);
    takeN(limiter, 'a', 2);
    const starts = () => {
      const v = limiter.take('a');
      return v.allowed ? 'allowed' : v.burstStarted;
    };
    assert.deepEqual([starts(), starts(), starts()], [true, false, false]);
    clock.advance(1_000);
    assert.deepEqual([starts(), starts()], ['allowed', false], 'one token back: the same burst');
    clock.advance(2_000);
    assert.deepEqual([starts(), starts(), starts()], ['allowed', 'allowed', true], 'a full bucket: a new burst');
  });

  it('remembers a bounded number of addresses, forgetting the least recently seen', () => {
    const limiter = new RateLimiter({ burst: 1, perMinute: 1 }, new FakeClock(), 100);
    for (let i = 0; i < 1000; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(limiter.size, 100);
    assert.equal(limiter.take('10.0.3.231').allowed, false, 'a recent address keeps its empty bucket');
    assert.equal(limiter.take('10.0.0.0').allowed, true, 'the oldest was forgotten: a fresh bucket');
  });

  it('refuses a rule that could never allow anything', () => {
    assert.throws(() => new RateLimiter({ burst: 0, perMinute: 1 }, new FakeClock()), RangeError);
    assert.throws(() => new RateLimiter({ burst: 1, perMinute: 0 }, new FakeClock()), RangeError);
  });
});
