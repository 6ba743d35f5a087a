import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventsQuery, summarize } from './audit.ts';

describe('web audit page: query and summary', () => {
  it('turns the form into the events query', () => {
    const q = new URLSearchParams(
      eventsQuery({ from: '2026-01-02T03:04:00Z', to: '', types: 'session.start, user.login', user: ' ada ' }, 100),
    );
    assert.equal(q.get('from'), '2026-01-02T03:04:00.000Z');
    assert.equal(q.get('to'), null);
    assert.equal(q.get('types'), 'session.start,user.login');
    assert.equal(q.get('user'), 'ada');
    assert.equal(q.get('limit'), '100');
    assert.equal(new URLSearchParams(eventsQuery({ from: 'garbage', to: '', types: '', user: '' })).get('from'), null);
  });

  it('summarises an event without its common fields', () => {
    assert.equal(
      summarize({
        event: 'exec',
        code: 'WE3000I',
        time: 't',
        uid: 'u',
        user: 'ada',
        command: 'ls',
        login: 'root',
        env: { a: 1 },
      }),
      'command=ls login=root env={"a":1}',
    );
  });
});
