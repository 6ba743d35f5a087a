// A warning before a server runs out of file descriptors. When it does, libuv accepts each new connection and closes
// it at once (its EMFILE trick), so clients see resets and the server logs nothing: a proxy at the 20,000 limit of
// one machine stopped taking agents at ~7,700 that way (bench/agents.ts --auth-via-proxy). Each agent costs a proxy
// one descriptor for its tunnel, and two more when it reaches the auth server through the proxy.
import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';

/** Warn at this share of the limit, and again only after falling below REARM. */
const WARN = 0.9;
const REARM = 0.8;
const CHECK_MS = 10_000;

export interface DescriptorUse {
  open: number;
  limit: number;
}

/** This process's open descriptors and its soft limit, from /proc (undefined where there is no /proc). */
export function descriptorUse(): DescriptorUse | undefined {
  try {
    const open = readdirSync('/proc/self/fd').length;
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? { open, limit: Number(m[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Logs a warning when `read()` nears its limit; returns the function that stops the checks. */
export function watchDescriptors(log: Logger, read: () => DescriptorUse | undefined = descriptorUse, everyMs = CHECK_MS): () => void {
  let warned = false;
  const check = () => {
    const use = read();
    if (!use) return;
    if (!warned && use.open >= use.limit * WARN) {
      warned = true;
      log.warn(
        { open: use.open, limit: use.limit },
        'nearly out of file descriptors: new connections will be dropped at the limit; raise it (ulimit -n, systemd LimitNOFILE)',
      );
    } else if (warned && use.open < use.limit * REARM) warned = false;
  };
  const timer = setInterval(check, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
