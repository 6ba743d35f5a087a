// The audit emitter of the Auth Service. Every event is written to the backend's event store before
// the operation that caused it is reported as done: if the write fails, the caller fails closed.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditEvent, EventStore } from '../backend/backend.ts';
import type { Clock } from '../api/clock.ts';
import { eventCode, type EventName } from './catalog.ts';
import { Counter, type Registry } from 'prom-client';

export interface AuditFields {
  user?: string;
  success?: boolean;
  [field: string]: unknown;
}

export class AuditLog {
  private readonly written: Counter | undefined;
  private readonly failures: Counter | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly cluster: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    metrics?: Registry,
  ) {
    if (metrics) {
      this.written = new Counter({ name: 'ward_audit_events_written_total', help: 'Audit events stored by this auth server', registers: [metrics] });
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
      await this.store.append([record]);
      this.written?.inc();
    } catch (err) {
      this.failures?.inc();
      this.log.error({ event, err: (err as Error).message }, 'audit log write failed: refusing the operation');
      throw err;
    }
    return record;
  }
}
