import { useState, type FormEvent } from 'react';
import { api, ApiError } from '../api.ts';
import { useLoad } from '../useLoad.ts';
import type { Token } from '../../../src/api/types.ts';

export function Tokens() {
  const { data, error, reload } = useLoad<{ tokens: Token[] }>('/webapi/tokens');
  const [form, setForm] = useState({ type: 'node', ttl: '30', labels: '' });
  const [command, setCommand] = useState('');
  const [problem, setProblem] = useState('');
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setProblem('');
    const labels = Object.fromEntries(
      form.labels
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean)
        .map((l) => [l.split('=')[0]!.trim(), l.split('=').slice(1).join('=').trim()]),
    );
    try {
      const r = await api<{ command: string }>('POST', '/webapi/tokens', {
        type: form.type,
        ttl_minutes: Number(form.ttl),
        labels,
      });
      setCommand(r.command);
      reload();
    } catch (err) {
      setProblem(err instanceof ApiError ? err.message : 'failed');
    }
  };
  const remove = async (name: string) => {
    try {
      await api('DELETE', `/webapi/tokens/${name}`);
      reload();
    } catch (err) {
      setProblem(err instanceof ApiError ? err.message : 'failed');
    }
  };
  return (
    <section>
      <div className="titlebar">
        <h1>Join tokens</h1>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <form className="filters card" onSubmit={(e) => void add(e)}>
        <label>
          Type
          <select value={form.type} onChange={(e) => setForm({ ...form, type: e.target.value })}>
            {['node', 'proxy', 'db', 'app', 'kube'].map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Valid for (minutes)
          <input
            type="number"
            min={1}
            max={10080}
            value={form.ttl}
            onChange={(e) => setForm({ ...form, ttl: e.target.value })}
          />
        </label>
        <label>
          Labels
          <input
            placeholder="env=prod, team=db"
            value={form.labels}
            onChange={(e) => setForm({ ...form, labels: e.target.value })}
          />
        </label>
        <button type="submit">Add token</button>
      </form>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      {command && (
        <div className="card notice">
          <strong>Run on the new host:</strong>
          <input readOnly className="mono" value={command} onFocus={(e) => e.target.select()} />
        </div>
      )}
      <table className="grid">
        <thead>
          <tr>
            <th>Token</th>
            <th>Type</th>
            <th>Labels</th>
            <th>Expires</th>
            <th className="right" />
          </tr>
        </thead>
        <tbody>
          {(data?.tokens ?? []).map((t) => (
            <tr key={t.metadata.name}>
              <td className="mono small">{t.metadata.name.slice(0, 8)}…</td>
              <td>{t.spec.roles.join(', ')}</td>
              <td>
                {Object.entries(t.spec.labels ?? {}).map(([k, v]) => (
                  <span key={k} className="chip">
                    {k}={v}
                  </span>
                ))}
              </td>
              <td>{t.metadata.expires ? new Date(t.metadata.expires).toLocaleString() : ''}</td>
              <td className="right">
                <button className="danger" onClick={() => void remove(t.metadata.name)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.tokens.length === 0 && <p className="muted">No join tokens.</p>}
    </section>
  );
}
