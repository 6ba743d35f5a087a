import { useState } from 'react';
import type { AuditEvent } from '../../../src/api/types.ts';
import { eventsQuery, summarize, type AuditFilters } from '../lib/audit.ts';
import { useLoad } from '../useLoad.ts';

export function Audit() {
  const [form, setForm] = useState<AuditFilters>({ from: '', to: '', types: '', user: '' });
  const [query, setQuery] = useState(eventsQuery(form));
  const { data, error } = useLoad<{ events: AuditEvent[] }>(`/webapi/events?${query}`);
  const [selected, setSelected] = useState<AuditEvent | undefined>();
  const field = (k: keyof AuditFilters) => ({
    value: form[k],
    onChange: (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value }),
  });
  return (
    <section>
      <div className="titlebar">
        <h1>Audit log</h1>
      </div>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery(eventsQuery(form));
        }}
      >
        <label>
          From
          <input type="datetime-local" {...field('from')} />
        </label>
        <label>
          To
          <input type="datetime-local" {...field('to')} />
        </label>
        <label>
          Types
          <input placeholder="session.start, user.login" {...field('types')} />
        </label>
        <label>
          User
          <input placeholder="alice" {...field('user')} />
        </label>
        <button type="submit">Search</button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="split">
        <table className="grid clickable">
          <thead>
            <tr>
              <th>Time</th>
              <th>Event</th>
              <th>User</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {(data?.events ?? []).map((e) => (
              <tr key={e.uid} onClick={() => setSelected(e)} className={selected?.uid === e.uid ? 'selected' : ''}>
                <td className="nowrap small">{new Date(e.time).toLocaleString()}</td>
                <td className="nowrap">
                  <span className={`code ${e.code.endsWith('W') ? 'warn' : e.code.endsWith('E') ? 'err' : ''}`}>
                    {e.code}
                  </span>{' '}
                  {e.event}
                </td>
                <td>{e.user ?? ''}</td>
                <td className="small mono ellipsis">{summarize(e)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {selected && (
          <aside className="card json">
            <div className="titlebar">
              <strong>{selected.event}</strong>
              <button className="ghost" onClick={() => setSelected(undefined)}>
                Close
              </button>
            </div>
            <pre data-testid="event-json">{JSON.stringify(selected, null, 2)}</pre>
          </aside>
        )}
      </div>
      {data && data.events.length === 0 && <p className="muted">No events match.</p>}
    </section>
  );
}
