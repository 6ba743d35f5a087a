import { useEffect } from 'react';
import type { Me } from '../api.ts';
import { useLoad } from '../useLoad.ts';
import type { SessionTracker as Tracker } from '../../../src/api/types.ts';
import { terminalURL } from './Servers.tsx';

export function Sessions({ me }: { me: Me }) {
  const { data, error, reload } = useLoad<{ sessions: Tracker[] }>('/webapi/sessions/live');
  useEffect(() => {
    const t = setInterval(reload, 5000);
    return () => clearInterval(t);
  }, [reload]);
  // A joiner needs a login on the node too: the session's own if the user has it.
  const loginFor = (s: Tracker) => (me.logins.includes(s.spec.login) ? s.spec.login : (me.logins[0] ?? s.spec.login));
  const sessions = data?.sessions ?? [];
  return (
    <section>
      <div className="titlebar">
        <h1>Active sessions</h1>
        <button className="ghost" onClick={reload}>
          Refresh
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="grid">
        <thead>
          <tr>
            <th>Session</th>
            <th>User</th>
            <th>Server</th>
            <th>Started</th>
            <th>Participants</th>
            <th className="right">Join</th>
          </tr>
        </thead>
        <tbody>
          {sessions.map((s) => (
            <tr key={s.metadata.name}>
              <td className="mono small">{s.metadata.name}</td>
              <td>{s.spec.user}</td>
              <td>
                {s.spec.login}@{s.spec.hostname}
              </td>
              <td>{new Date(s.spec.started).toLocaleString()}</td>
              <td>{s.spec.participants.map((p) => `${p.user} (${p.mode})`).join(', ')}</td>
              <td className="right nowrap">
                <a
                  className="button ghost"
                  target="_blank"
                  rel="noopener"
                  href={terminalURL({
                    node: s.spec.server_id,
                    host: s.spec.hostname,
                    login: loginFor(s),
                    join: s.metadata.name,
                    mode: 'observer',
                  })}
                >
                  Observe
                </a>{' '}
                <a
                  className="button"
                  target="_blank"
                  rel="noopener"
                  href={terminalURL({
                    node: s.spec.server_id,
                    host: s.spec.hostname,
                    login: loginFor(s),
                    join: s.metadata.name,
                    mode: 'peer',
                  })}
                >
                  Join as peer
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && sessions.length === 0 && <p className="muted">No live sessions you may see.</p>}
    </section>
  );
}
