import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { FakeClock } from '../time/clock.ts';
import { LimitExceeded } from '../api/errors.ts';
import { JoinLimits } from './joinlimits.ts';

const log = pino({ level: 'silent' });

/** How many of `n` joins from `addr` on `connection` are admitted. */
function admitted(limits: JoinLimits, addr: string, connection: object, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    try {
      limits.admitJoin(addr, connection);
      ok++;
    } catch (err) {
      assert.ok(err instanceof LimitExceeded);
    }
  }
  return ok;
}

describe("the auth server's join limits", () => {
  it('refuses joins past the burst of one connection, while a new connection of the address still joins', () => {
    const opts = { clock: new FakeClock(), log, audit: async () => {} };
    const limits = new JoinLimits({ burst: 50, perMinute: 120 }, opts);
    const flood = {};
    assert.equal(admitted(limits, '10.0.0.7', flood, 30), 10);
    assert.equal(admitted(limits, '10.0.0.7', {}, 1), 1);
  });

  it('refuses an address past its burst on any number of connections, while another address joins', () => {
    const limits = new JoinLimits({ burst: 3, perMinute: 60 }, { clock: new FakeClock(), log, audit: async () => {} });
    const joins = Array.from({ length: 5 }, () => admitted(limits, '10.0.0.7', {}, 1));
    assert.deepEqual(joins, [1, 1, 1, 0, 0]);
    assert.equal(admitted(limits, '10.0.0.8', {}, 1), 1);
  });

  it('says in one line when to try again, and lets the address join once its bucket refills', () => {
    const clock = new FakeClock();
    const limits = new JoinLimits({ burst: 1, perMinute: 60 }, { clock, log, audit: async () => {} });
    limits.admitJoin('10.0.0.7', {});
    assert.throws(() => limits.admitJoin('10.0.0.7', {}), {
      name: 'LimitExceeded',
      message: 'too many join requests from this address: try again in 1 s',
    });
    clock.advance(1_000);
    limits.admitJoin('10.0.0.7', {});
  });

  it('audits a refused address once per burst and counts every refusal', async () => {
    const audited: Array<Record<string, unknown>> = [];
    const metrics = new Registry();
    const audit = async (e: Record<string, unknown>) => audited.push(e);
    const limits = new JoinLimits({ burst: 2, perMinute: 60 }, { clock: new FakeClock(), log, audit, metrics });
    assert.equal(admitted(limits, '::ffff:10.0.0.7', {}, 6), 2);
    assert.deepEqual(audited, [{ limit: 'join', source: '10.0.0.7', remote_addr: '::ffff:10.0.0.7' }]);
    assert.match(await metrics.metrics(), /^ward_auth_rate_limited_total\{limit="join"\} 4$/m);
  });

  it('keeps refusing when the audit cannot be written', () => {
    const audit = () => Promise.reject(new Error('backend away'));
    const limits = new JoinLimits({ burst: 1, perMinute: 60 }, { clock: new FakeClock(), log, audit });
    limits.admitJoin('10.0.0.7', {});
    assert.throws(() => limits.admitJoin('10.0.0.7', {}), LimitExceeded);
  });
});
