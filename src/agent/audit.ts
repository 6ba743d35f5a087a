// What an agent saw, sent to the cluster's audit log: events are queued in memory and sent in batches
// every second, kept and retried while the auth server is unreachable. The queue is bounded; when full
// the oldest events are dropped and that is logged loudly. (A disk spool that survives SIGKILL is the
// audit issue's work.)
import type { Logger } from 'pino';
import type { AuthClient } from '../api/client.ts';

const MAX_QUEUE = 10_000;
const BATCH = 500;
const FLUSH_INTERVAL_MS = 1000;

export class AuditForwarder {
  private queue: string[] = [];
  private dropped = 0;
  private sending = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly auth: AuthClient,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  emit(event: string, fields: Record<string, unknown>): void {
    if (this.queue.length >= MAX_QUEUE) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(JSON.stringify({ ...fields, event }));
  }

  async flush(): Promise<void> {
    if (this.sending || this.queue.length === 0) return;
    this.sending = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.slice(0, BATCH);
        await this.auth.emitAuditEvents({ events: batch });
        this.queue.splice(0, batch.length);
      }
      if (this.dropped) {
        this.log.error({ dropped: this.dropped }, 'audit queue overflowed while the auth server was unreachable: events were lost');
        this.dropped = 0;
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message, queued: this.queue.length }, 'cannot send audit events yet; will retry');
    } finally {
      this.sending = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, 2000).unref())]);
  }
}
