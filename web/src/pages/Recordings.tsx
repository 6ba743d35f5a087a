import { navigate } from '../router.ts';
import { useLoad } from '../useLoad.ts';
import type { RecordedSession as Recording } from '../../../src/api/types.ts';

function duration(a: string, b: string): string {
  const s = Math.max(0, Math.round((new Date(b).getTime() - new Date(a).getTime()) / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
}

export function Recordings() {
  const { data, error } = useLoad<{ recordings: Recording[] }>('/webapi/recordings');
  return (
    <section>
      <div className="titlebar">
        <h1>Session recordings</h1>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="grid">
        <thead>
          <tr>
            <th>Started</th>
            <th>User</th>
            <th>Server</th>
            <th>Duration</th>
            <th>Participants</th>
            <th className="right">Play</th>
          </tr>
        </thead>
        <tbody>
          {(data?.recordings ?? []).map((r) => (
            <tr key={r.metadata.name}>
              <td className="nowrap">{new Date(r.spec.started).toLocaleString()}</td>
              <td>{r.spec.user}</td>
              <td>
                {r.spec.login}@{r.spec.hostname}
              </td>
              <td>
                {duration(r.spec.started, r.spec.ended)}
                {r.spec.interrupted ? ' (cut short)' : ''}
              </td>
              <td>{r.spec.participants.join(', ')}</td>
              <td className="right">
                <a
                  className="button"
                  href={`/web/recordings/${r.metadata.name}`}
                  onClick={(e) => {
                    e.preventDefault();
                    navigate(`/web/recordings/${r.metadata.name}`);
                  }}
                >
                  Play
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.recordings.length === 0 && <p className="muted">No recordings.</p>}
    </section>
  );
}
