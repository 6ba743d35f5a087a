// Durations as people type them: the forms Ward takes, and a clear refusal of anything else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from './duration.ts';

describe('durations', () => {
  it('reads units and sums of them', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration(' 7d '), 7 * 86_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(formatDuration(5_400_000), '1h30m');
  });

  it('refuses what is not a positive duration', () => {
    for (const bad of ['', '30', 'm', '-5m', '0s', '1h 30m', '1x', '5m!', '1'.repeat(33) + 's']) {
      assert.throws(() => parseDuration(bad), /invalid duration/, bad);
    }
  });

  it('refuses a duration longer than ten years, before it overflows the API or a Date', () => {
    assert.equal(parseDuration('3650d'), 3650 * 86_400_000);
    for (const long of ['3651d', '99999d', '9'.repeat(30) + 'h'])
      assert.throws(() => parseDuration(long), /is too long \(at most 3650d\)/, long);
  });
});
