// Live sessions as the auth server lists them (session_tracker resources): a node reports a session when it
// starts, changes and ends, and refreshes every live one each heartbeat so that its listing does not expire.
//
// The refresh is spread over part of the heartbeat interval rather than sent all at once. Why: sessions that
// started together (a deploy, a bench) stay in step, and 200 reports at one tick kept the auth server and the
// node's event loop busy for ~130 ms, which every keystroke in that window waited for (bench/interactive.ts, a CPU
// profile of `ward start`; the echo figures are in bench/README.md).
//
// Reports for one session go out in order, one at a time: a refresh still in flight when the session ends
// cannot land after the removal and list the session again until it expires.
import type { LiveSession } from './live.ts';

export class SessionReporter {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    /** Sends one report; must not reject. */
    private readonly send: (session: LiveSession, ended: boolean) => Promise<void>,
    /** Whether the session is still live (the registry drops a session before its end is reported). */
    private readonly isLive: (sid: string) => boolean,
  ) {}

  /** Reports a start, a change or the end of a session, after any report for it still in flight. */
  report(session: LiveSession, ended: boolean): Promise<void> {
    const sid = session.sid;
    const next = (this.chains.get(sid) ?? Promise.resolve()).then(() => {
      // A refresh or change queued behind the end: the session is gone, and saying otherwise would list it again.
      if (!ended && !this.isLive(sid)) return;
      return this.send(session, ended);
    });
    this.chains.set(sid, next);
    void next.then(() => {
      if (this.chains.get(sid) === next) this.chains.delete(sid);
    });
    return next;
  }

  /** Refreshes every session in `sessions`, their reports spaced evenly over `spreadMs`. */
  refresh(sessions: LiveSession[], spreadMs: number): void {
    sessions.forEach((session, i) => {
      const timer = setTimeout(
        () => {
          this.timers.delete(timer);
          if (this.isLive(session.sid)) void this.report(session, false);
        },
        Math.floor((i * spreadMs) / sessions.length),
      );
      timer.unref();
      this.timers.add(timer);
    });
  }

  /** Cancels the refreshes not yet sent (the node is stopping). */
  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
