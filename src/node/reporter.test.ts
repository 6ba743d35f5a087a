// The node's live-session reports: one session's reports stay in order (an end is never overtaken by a
// refresh), and the periodic refresh is spread out instead of sent in one burst.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LiveSession } from './live.ts';
import { SessionReporter } from './reporter.ts';

const session = (sid: string) => new LiveSession(sid, 'alice', 'alice', new Date(), undefined, () => {});

/** A send whose calls finish only when the test says so, in any order. */
function manualSend() {
  const log: string[] = [];
  const pending: { what: string; finish: () => void }[] = [];
  const send = (s: LiveSession, ended: boolean) =>
    new Promise<void>((resolve) => {
      const what = `${ended ? 'end' : 'report'} ${s.sid}`;
      log.push(`start ${what}`);
      pending.push({ what, finish: () => (log.push(`done ${what}`), resolve()) });
    });
  return { send, log, pending };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('session reporter', () => {
  it('sends one session’s reports one at a time, in order, and drops a refresh queued behind its end', async () => {
    const { send, log, pending } = manualSend();
    const live = new Set(['s1']);
    const reporter = new SessionReporter(send, (sid) => live.has(sid));
    const s1 = session('s1');
    const first = reporter.report(s1, false);
    await tick();
    live.delete('s1'); // the session ends while its report is in flight
    const end = reporter.report(s1, true);
    const late = reporter.report(s1, false);
    await tick();
    assert.deepEqual(log, ['start report s1'], 'the end waits for the report in flight');
    pending.shift()!.finish();
    await first;
    await tick();
    assert.deepEqual(log, ['start report s1', 'done report s1', 'start end s1']);
    pending.shift()!.finish();
    await Promise.all([end, late]);
    assert.deepEqual(
      log,
      ['start report s1', 'done report s1', 'start end s1', 'done end s1'],
      'the late refresh is not sent',
    );
  });

  it('lets different sessions report at once', async () => {
    const { send, log, pending } = manualSend();
    const reporter = new SessionReporter(send, () => true);
    void reporter.report(session('a'), false);
    void reporter.report(session('b'), false);
    await tick();
    assert.deepEqual(log, ['start report a', 'start report b']);
    for (const p of pending) p.finish();
  });

  it('spreads a refresh evenly over the given time, skipping sessions that ended meanwhile', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const sent: string[] = [];
    const live = new Set(['a', 'b', 'c', 'd']);
    const reporter = new SessionReporter(
      async (s) => void sent.push(s.sid),
      (sid) => live.has(sid),
    );
    reporter.refresh(['a', 'b', 'c', 'd'].map(session), 1000);
    const at = async (ms: number) => {
      t.mock.timers.tick(ms);
      for (let i = 0; i < 5; i++) await tick();
    };
    await at(0);
    assert.deepEqual(sent, ['a'], 'the first goes at once');
    await at(249);
    assert.deepEqual(sent, ['a'], 'the next waits a quarter of the time');
    await at(1);
    assert.deepEqual(sent, ['a', 'b']);
    live.delete('c');
    await at(500);
    assert.deepEqual(sent, ['a', 'b', 'd'], 'c ended before its turn');
  });

  it('cancels the refreshes not yet sent on close', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const sent: string[] = [];
    const reporter = new SessionReporter(
      async (s) => void sent.push(s.sid),
      () => true,
    );
    reporter.refresh(['a', 'b', 'c'].map(session), 900);
    t.mock.timers.tick(0);
    for (let i = 0; i < 5; i++) await tick();
    reporter.close();
    t.mock.timers.tick(900);
    for (let i = 0; i < 5; i++) await tick();
    assert.deepEqual(sent, ['a']);
  });
});
