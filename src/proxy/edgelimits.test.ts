import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { FakeClock } from '../time/clock.ts';
import { EdgeLimits } from './edgelimits.ts';

const rules = {
  sign_in: { burst: 2, perMinute: 60 },
  link: { burst: 1, perMinute: 60 },
  auth_connect: { burst: 1, perMinute: 60 },
};

describe("the proxy's per-address limits", () => {
  it('audits an address once per burst and counts every refusal in the metric', async () => {
    const audited: Array<Record<string, unknown>> = [];
    const metrics = new Registry();
    const audit = async (e: Record<string, unknown>) => audited.push(e);
    const limits = new EdgeLimits(rules, { clock: new FakeClock(), log: pino({ level: 'silent' }), metrics, audit });
    const verdicts = Array.from({ length: 6 }, () => limits.admit('sign_in', '::ffff:127.0.0.2').allowed);
    assert.deepEqual(verdicts, [true, true, false, false, false, false]);
    const remote_addr = '::ffff:127.0.0.2';
    const event = { event: 'proxy.rate_limited', limit: 'sign_in', source: '127.0.0.2', remote_addr };
    assert.deepEqual(audited, [event]);
    const text = await metrics.metrics();
    assert.match(text, /^ward_proxy_rate_limited_total\{limit="sign_in"\} 4$/m);
  });

  it('keeps separate buckets per kind and per address', () => {
    const limits = new EdgeLimits(rules, { clock: new FakeClock(), log: pino({ level: 'silent' }) });
    assert.equal(limits.admit('link', '10.0.0.1').allowed, true);
    assert.equal(limits.admit('link', '10.0.0.1').allowed, false);
    assert.equal(limits.admit('auth_connect', '10.0.0.1').allowed, true, 'another kind');
    assert.equal(limits.admit('link', '10.0.0.2').allowed, true, 'another address');
  });

  it('keeps refusing when the audit cannot be written', async () => {
    const audit = () => Promise.reject(new Error('auth is away'));
    const limits = new EdgeLimits(rules, { clock: new FakeClock(), log: pino({ level: 'silent' }), audit });
    limits.admit('link', '10.0.0.1');
    assert.equal(limits.admit('link', '10.0.0.1').allowed, false);
    await new Promise((resolve) => setImmediate(resolve));
  });

  it('shares one metric between two proxies of one process', () => {
    const metrics = new Registry();
    const log = pino({ level: 'silent' });
    new EdgeLimits(rules, { clock: new FakeClock(), log, metrics });
    assert.doesNotThrow(() => new EdgeLimits(rules, { clock: new FakeClock(), log, metrics }));
  });
});
