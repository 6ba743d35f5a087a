// A warning before a server runs out of file descriptors. When it does, libuv accepts each new connection and closes
// it at once (its EMFILE trick), so clients see resets and the server logs nothing: a proxy at the 20,000 limit of
// one machine stopped taking agents at ~7,700 that way (bench/agents.ts --auth-via-proxy). Each agent costs a proxy
// one descriptor for its tunnel, and two more when it reaches the auth server through the proxy.
import { readdir, readFile } from 'node:fs/promises';
import type { Logger } from 'pino';

/** Warn at this share of the limit, and again only after falling below REARM. */
const WARN = 0.9;
const REARM = 0.8;
const CHECK_MS = 10_000;

export interface DescriptorUse {
  open: number;
  limit: number;
}

/**
 * This process's open descriptors and its soft limit, from /proc (undefined where there is no /proc). Read off the
 * event loop: listing /proc/self/fd by hand held an auth server with 10,000 agent connections ~30 ms every 10 s
 * (its CPU profile), which callers then saw as a stalled API call.
 */
export async function descriptorUse(): Promise<DescriptorUse | undefined> {
  try {
    // One after the other: read at once, the limits file's own descriptor is counted or not as the race goes.
    const limits = await readFile('/proc/self/limits', 'utf8');
    const fds = await readdir('/proc/self/fd');
    const m = /^Max open files\s+(\d+)/m.exec(limits);
    return m ? { open: fds.length, limit: Number(m[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Logs a warning when `read()` nears its limit; returns the function that stops the checks. */
export function watchDescriptors(
  log: Logger,
  read: () => Promise<DescriptorUse | undefined> = descriptorUse,
  everyMs = CHECK_MS,
): () => void {
  let warned = false;
  let reading = false;
  const check = async () => {
    if (reading) return; // a slow read is not stacked up behind
    reading = true;
    const use = await read()
      .catch(() => undefined)
      .finally(() => (reading = false));
    if (!use) return;
    if (!warned && use.open >= use.limit * WARN) {
      warned = true;
      log.warn(
        { open: use.open, limit: use.limit },
        'nearly out of file descriptors: new connections will be dropped at the limit; raise it (ulimit -n, ' +
          'systemd LimitNOFILE)',
      );
    } else if (warned && use.open < use.limit * REARM) warned = false;
  };
  const timer = setInterval(() => void check(), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
