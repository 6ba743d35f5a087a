// What a joined host saw, sent to the cluster's audit log. Each event is appended to a spool file on disk
// before the action it records goes ahead (a node killed with SIGKILL keeps it: the write is in the
// page cache), and the spool is sent to the auth server in batches about once a second, then deleted.
// Delivery is at least once: each event carries its uid from the start, so the rare resend after a
// crash between "sent" and "deleted" is recognisable. If the spool cannot be written (disk full, or
// past its size limit while the auth server is away), emit() throws and the caller refuses the access
// that needed the event: nothing is dropped silently.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuthClient } from '../api/client.ts';
import { BadParameter, LimitExceeded } from '../api/errors.ts';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../time/clock.ts';

const BATCH = 500;
const FLUSH_INTERVAL_MS = 1000;
/** The spool may hold this much while the auth server is unreachable; then new access is refused. */
export const MAX_SPOOL_BYTES = 256 * 1024 * 1024;
const SEGMENT = /^(\d{12})\.jsonl$/;

export class AuditForwarder {
  private fd: number | undefined;
  private segment = 0;
  private segmentBytes = 0;
  private spoolBytes = 0;
  private sending = false;
  /** Lines of the oldest segment already accepted by the auth server (lost on restart: then resent). */
  private acked = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;
  /** Failed spool writes and sends, for the logs and for tests. */
  readonly stats = { written: 0, sent: 0, writeFailures: 0, sendFailures: 0 };

  constructor(
    private readonly auth: AuthClient,
    private readonly dir: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    metrics?: Registry,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (metrics) this.registerMetrics(metrics);
    const existing = this.segments();
    for (const n of existing) this.spoolBytes += fs.statSync(this.segmentPath(n)).size;
    this.segment = (existing.at(-1) ?? 0) + 1;
    if (existing.length)
      log.info(
        { segments: existing.length, bytes: this.spoolBytes },
        'audit events spooled before a restart will be sent',
      );
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  private registerMetrics(registers: Registry): void {
    const stats = this.stats;
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [registers],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter('ward_audit_spool_written_total', 'Audit events this agent wrote to its spool', () => stats.written);
    counter(
      'ward_audit_spool_write_failures_total',
      'Audit events this agent could not spool; each refused the access that needed it',
      () => stats.writeFailures,
    );
    counter('ward_audit_events_sent_total', 'Spooled audit events the auth server accepted', () => stats.sent);
    counter(
      'ward_audit_send_failures_total',
      'Attempts to send the spool that failed (retried)',
      () => stats.sendFailures,
    );
    const spool = () => this.spoolBytes;
    new Gauge({
      name: 'ward_audit_spool_bytes',
      help: 'Audit events waiting on disk for the auth server',
      registers: [registers],
      collect() {
        this.set(spool());
      },
    });
  }

  private segmentPath(n: number): string {
    return path.join(this.dir, `${String(n).padStart(12, '0')}.jsonl`);
  }

  private segments(): number[] {
    return fs
      .readdirSync(this.dir)
      .map((f) => SEGMENT.exec(f)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** Spools one event; throws if it cannot (the caller must then refuse the access it records). */
  emit(event: string, fields: Record<string, unknown>): void {
    const line = JSON.stringify({ ...fields, event, uid: randomUUID(), time: this.clock.now().toISOString() }) + '\n';
    const bytes = Buffer.byteLength(line);
    try {
      if (this.spoolBytes + bytes > MAX_SPOOL_BYTES)
        throw new Error('the audit spool is full (the auth server has been unreachable for long)');
      if (this.fd === undefined) {
        this.fd = fs.openSync(this.segmentPath(this.segment), 'a', 0o600);
        this.segmentBytes = 0;
      }
      fs.writeSync(this.fd, line);
    } catch (err) {
      this.stats.writeFailures++;
      this.log.error({ event, err: (err as Error).message }, 'cannot spool an audit event');
      throw err;
    }
    this.segmentBytes += bytes;
    this.spoolBytes += bytes;
    this.stats.written++;
  }

  /** Seals the segment being written, so everything emitted so far is sendable. */
  private seal(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
    this.segment++;
  }

  async flush(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      this.seal();
      for (const n of this.segments()) {
        if (n >= this.segment) break;
        await this.sendSegment(n);
      }
    } catch (err) {
      this.stats.sendFailures++;
      this.log.warn(
        { err: (err as Error).message, spooled_bytes: this.spoolBytes },
        'cannot send audit events yet; will retry',
      );
    } finally {
      this.sending = false;
    }
  }

  private async sendSegment(n: number): Promise<void> {
    const file = this.segmentPath(n);
    const text = fs.readFileSync(file, 'utf8');
    // A line torn by a kill mid-write is the only line that can be incomplete: the last one.
    const lines = text.split('\n').filter((l, i, all) => l !== '' && (i < all.length - 1 || isJSON(l)));
    let done = this.acked.get(n) ?? 0;
    while (done < lines.length) {
      const batch = lines.slice(done, done + BATCH);
      try {
        await this.auth.emitAuditEvents({ events: batch });
      } catch (err) {
        if (!(err instanceof BadParameter || err instanceof LimitExceeded)) throw err;
        // The auth server will never take this batch (a newer node reporting an event an older auth
        // server does not know, say): set the segment aside, whole, for a human; never block the rest.
        fs.renameSync(file, `${file}.rejected`);
        this.acked.delete(n);
        this.spoolBytes = Math.max(0, this.spoolBytes - Buffer.byteLength(text));
        this.log.error(
          { file: `${file}.rejected`, err: err.message },
          'the auth server refused spooled audit events; kept them aside',
        );
        return;
      }
      done += batch.length;
      this.acked.set(n, done);
      this.stats.sent += batch.length;
    }
    fs.rmSync(file, { force: true });
    this.acked.delete(n);
    this.spoolBytes = Math.max(0, this.spoolBytes - Buffer.byteLength(text));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, 2000).unref())]);
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

function isJSON(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
