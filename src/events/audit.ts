// The audit emitter of the Auth Service. Every event is written to the backend's event store before
// the operation that caused it is reported as done: if the write fails, the caller fails closed.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditEvent, EventQuery, EventStore } from '../backend/backend.ts';
import type { Clock } from '../time/clock.ts';
import { eventCode, type EventName } from './catalog.ts';
import { Counter, type Registry } from 'prom-client';

export interface AuditFields {
  user?: string;
  success?: boolean;
  [field: string]: unknown;
}

/** Most events one group commit writes in one call to the store. */
const MAX_BATCH = 500;

interface Pending {
  record: AuditEvent;
  stored(): void;
  failed(err: unknown): void;
}

export class AuditLog {
  private readonly written: Counter | undefined;
  private readonly failures: Counter | undefined;
  private queue: Pending[] = [];
  private flushing = false;

  constructor(
    private readonly store: EventStore,
    private readonly cluster: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    metrics?: Registry,
  ) {
    if (metrics) {
      this.written = new Counter({
        name: 'ward_audit_events_written_total',
        help: 'Audit events stored by this auth server',
        registers: [metrics],
      });
      this.failures = new Counter({
        name: 'ward_audit_write_failures_total',
        help: 'Audit writes that failed; each refused the operation that needed it',
        registers: [metrics],
      });
    }
  }

  /** `at` carries an agent's own uid and time for an event it spooled (checked by the caller). */
  async emit(event: EventName, fields: AuditFields = {}, at: { uid?: string; time?: Date } = {}): Promise<AuditEvent> {
    const record: AuditEvent = {
      event,
      code: eventCode(event, fields.success !== false),
      time: (at.time ?? this.clock.now()).toISOString(),
      uid: at.uid ?? randomUUID(),
      cluster: this.cluster,
      ...fields,
    };
    try {
      await new Promise<void>((resolve, reject) => {
        this.queue.push({ record, stored: resolve, failed: reject });
        this.startFlush();
      });
      this.written?.inc();
    } catch (err) {
      this.failures?.inc();
      this.log.error({ event, err: (err as Error).message }, 'audit log write failed: refusing the operation');
      throw err;
    }
    return record;
  }

  /** Stored events matching `query`, oldest first unless `query.order` is 'desc' (`wctl events`, the web UI). */
  search(query: EventQuery): Promise<AuditEvent[]> {
    return this.store.search(query);
  }

  /**
   * Group commit: the events emitted while one write is being prepared or is in flight go to the store in
   * one call, and each emitter still waits for its own event to be stored. Why: one SQLite transaction per
   * event was ~65 us of each ~1 ms API login (bench/profile-api.ts); a batch shares one.
   */
  private startFlush(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      try {
        await this.store.append(batch.map((p) => p.record));
        for (const p of batch) p.stored();
      } catch (err) {
        if (batch.length === 1) batch[0]!.failed(err);
        // One event the store refuses (too large, say) must not refuse the others' operations: each alone.
        else for (const p of batch) await this.store.append([p.record]).then(p.stored, p.failed);
      }
    }
    this.flushing = false;
  }
}
