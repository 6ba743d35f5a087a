import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCast } from '../../../src/api/asciicast.ts';
import { buildTimeline, formatClock, indexAt, replay } from './cast.ts';

const CAST = [
  '{"version":2,"width":80,"height":24,"timestamp":1700000000}',
  '[0.1,"o","$ "]',
  '[0.5,"o","echo hi\\r\\n"]',
  '[0.6,"r","100x30"]',
  '[30.6,"o","hi\\r\\n"]',
  '[30.7,"m","bob joined as observer"]',
  '[31.0,"o","wörld ✓"]',
  '',
].join('\n');

describe('web player: asciicast timeline', () => {
  it('reads the header and the output, resize and marker events with the one asciicast codec', () => {
    const cast = parseCast(CAST);
    assert.deepEqual(cast.header, { version: 2, width: 80, height: 24, timestamp: 1700000000 });
    assert.equal(cast.events.length, 6);
  });

  it('refuses what is not asciicast v2, and stops at a torn last line', () => {
    assert.throws(() => parseCast(''), /empty/);
    assert.throws(() => parseCast('{"version":1,"width":80,"height":24}\n'), /not an asciicast v2/);
    assert.throws(() => parseCast('{"version":2,"width":80,"height":24}\nnope\n[1,"o","x"]\n'), /line 2/);
    assert.equal(parseCast('{"version":2,"width":80,"height":24}\n[1,"o","x"]\n[2,"o","y').events.length, 1);
  });

  it('caps idle pauses so a long silence plays in maxIdle seconds', () => {
    const tl = buildTimeline(parseCast(CAST), 2);
    assert.deepEqual(
      tl.events.map((e) => Math.round(e[0] * 10) / 10),
      [0.1, 0.5, 0.6, 2.6, 2.7, 3],
    );
    assert.equal(Math.round(tl.duration * 10) / 10, 3);
  });

  it('finds the events due at a position and what the screen shows then', () => {
    const tl = buildTimeline(parseCast(CAST), 2);
    assert.equal(indexAt(tl, 0), 0);
    assert.equal(indexAt(tl, 0.5), 2, 'an event at exactly t has been played');
    assert.equal(indexAt(tl, 100), tl.events.length);
    assert.deepEqual(replay(tl, 0, indexAt(tl, 1)), { output: '$ echo hi\r\n', size: { cols: 100, rows: 30 } });
    assert.equal(replay(tl, 0, tl.events.length).output, '$ echo hi\r\nhi\r\nwörld ✓');
  });

  it('formats the clock', () => {
    assert.equal(formatClock(0), '0:00');
    assert.equal(formatClock(61.9), '1:01');
    assert.equal(formatClock(3725), '1:02:05');
  });
});
