// The event-loop lag probe that the proxy's tunnel handshake shedding reads (src/tunnel/server.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startLagProbe } from './lag.ts';

/** Holds the event loop, as a burst of TLS handshakes does. */
function busyFor(ms: number): void {
  for (const until = performance.now() + ms; performance.now() < until; );
}

describe('event loop lag probe', () => {
  it('reads near zero on an idle loop, the length of a stall while it lasts, and recovers after it', async () => {
    const probe = startLagProbe(20);
    try {
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(probe.lagMs() < 50, `idle: ${probe.lagMs()} ms`);
      busyFor(300);
      // Read from inside the stall, before the probe's timer could run: the overdue time counts.
      assert.ok(probe.lagMs() >= 250, `during a 300 ms stall: ${probe.lagMs()} ms`);
      // The timer runs late once, notes it, and is back on time at the next round.
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(probe.lagMs() < 50, `after: ${probe.lagMs()} ms`);
    } finally {
      probe.stop();
    }
  });
});
