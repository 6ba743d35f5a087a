// The audit emitter's group commit: concurrent emits share one write, and each emitter hears about its own
// event only (one the store refuses does not refuse the others).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { systemClock } from '../time/clock.ts';
import type { AuditEvent, EventStore } from '../backend/backend.ts';
import { AuditLog } from './audit.ts';

/** A store that keeps what it is given and refuses any batch holding an event for user "poison". */
function recordingStore() {
  const calls: AuditEvent[][] = [];
  const stored: AuditEvent[] = [];
  const store: EventStore = {
    async append(events) {
      calls.push(events);
      if (events.some((e) => e.user === 'poison')) throw new Error('refused');
      stored.push(...events);
    },
    async search() {
      return stored;
    },
  };
  return { store, calls, stored };
}

describe('audit log group commit', () => {
  it('writes events emitted together in one call, in order, and resolves each after it is stored', async () => {
    const { store, calls, stored } = recordingStore();
    const audit = new AuditLog(store, 'unit', systemClock, pino({ level: 'silent' }));
    const users = ['a', 'b', 'c', 'd', 'e'];
    const records = await Promise.all(users.map((user) => audit.emit('cert.create', { user })));
    assert.equal(calls.length, 1);
    assert.deepEqual(
      stored.map((e) => e.user),
      users,
    );
    assert.deepEqual(
      records.map((r) => r.uid),
      stored.map((e) => e.uid),
    );
    await audit.emit('cert.create', { user: 'f' });
    assert.equal(calls.length, 2);
  });

  it('fails only the emit whose event the store refuses', async () => {
    const { store, stored } = recordingStore();
    const audit = new AuditLog(store, 'unit', systemClock, pino({ level: 'silent' }));
    const results = await Promise.allSettled(['a', 'poison', 'b'].map((user) => audit.emit('cert.create', { user })));
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual(
      stored.map((e) => e.user),
      ['a', 'b'],
    );
    await assert.rejects(audit.emit('cert.create', { user: 'poison' }), /refused/);
    await audit.emit('cert.create', { user: 'c' });
    assert.deepEqual(
      stored.map((e) => e.user),
      ['a', 'b', 'c'],
    );
  });
});
