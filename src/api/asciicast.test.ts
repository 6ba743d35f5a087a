import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { castOutput, encodeEvent, encodeHeader, parseCast, parseSize, schedule } from './asciicast.ts';

const header = encodeHeader({ version: 2, width: 80, height: 24, timestamp: 1_700_000_000 });

describe('asciicast v2', () => {
  it('round-trips output, resizes and markers', () => {
    const text =
      header +
      encodeEvent(0.5, 'o', 'hi\r\n') +
      encodeEvent(1.25, 'r', '100x30') +
      encodeEvent(2, 'm', 'bob joined as peer') +
      encodeEvent(2.5, 'o', '\x1b[1mbold\x1b[0m');
    const cast = parseCast(text);
    assert.deepEqual(cast.header, { version: 2, width: 80, height: 24, timestamp: 1_700_000_000 });
    assert.deepEqual(
      cast.events.map((e) => e[1]),
      ['o', 'r', 'm', 'o'],
    );
    assert.equal(castOutput(cast), 'hi\r\n\x1b[1mbold\x1b[0m');
    assert.deepEqual(parseSize(cast.events[1]![2]), { cols: 100, rows: 30 });
  });

  it('reads a recording whose last line was torn by a crash, but not one corrupt in the middle', () => {
    const good = header + encodeEvent(0.1, 'o', 'a');
    assert.equal(castOutput(parseCast(good + '[0.2, "o", "b')), 'a');
    assert.throws(() => parseCast(good + '[0.2, "o"\n' + encodeEvent(0.3, 'o', 'c')), /line 3: not JSON/);
    assert.throws(() => parseCast(header + '[0.2, "x", "b"]\n[0.3, "o", "c"]\n'), /line 2: not an asciicast event/);
  });

  it('refuses what is not an asciicast v2 header', () => {
    assert.throws(() => parseCast(''), /empty/);
    assert.throws(() => parseCast('{"version":1,"width":80,"height":24}\n'), /header/);
    assert.throws(() => parseCast('{"version":2,"width":0,"height":24}\n'), /header/);
    assert.throws(() => parseCast('{"version":2,"width":1e9,"height":24}\n'), /header/);
    assert.throws(() => parseCast('not json\n'), /not JSON/);
  });

  it('skips input events from other recorders instead of failing', () => {
    assert.equal(castOutput(parseCast(header + '[0.1, "i", "secret"]\n' + encodeEvent(0.2, 'o', 'x'))), 'x');
  });

  it('schedules playback at the given speed with long pauses capped', () => {
    const cast = parseCast(header + encodeEvent(1, 'o', 'a') + encodeEvent(61, 'o', 'b') + encodeEvent(61.5, 'o', 'c'));
    assert.deepEqual(
      [...schedule(cast, 1, 2)].map((s) => s.delayMs),
      [1000, 2000, 500],
    );
    assert.deepEqual(
      [...schedule(cast, 2, 2)].map((s) => s.delayMs),
      [500, 1000, 250],
    );
  });
});
