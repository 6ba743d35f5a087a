// How far behind its schedule this process's event loop runs: the time work waits before it is looked at. A server
// uses it to turn work away while it is overloaded (the proxy's tunnel handshakes, src/tunnel/server.ts) rather
// than to accept work it will only finish after its client has given up.

export interface LagProbe {
  /** How late the probe's timer is now, or was when it last ran, whichever is more (ms). */
  lagMs(): number;
  stop(): void;
}

/**
 * A timer due every `everyMs` notes how late it ran. Read from inside other work, `lagMs()` also counts how overdue
 * the timer is at that moment, so a loop that has been busy for seconds reads as seconds behind before the timer
 * gets to run again. One timer per probe, unref'd.
 */
export function startLagProbe(everyMs = 50): LagProbe {
  let due = performance.now() + everyMs;
  let last = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    last = Math.max(0, now - due);
    due = now + everyMs;
  }, everyMs);
  timer.unref();
  return {
    lagMs: () => Math.max(last, performance.now() - due),
    stop: () => clearInterval(timer),
  };
}
