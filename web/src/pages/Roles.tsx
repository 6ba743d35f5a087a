import { useState } from 'react';
import { api, ApiError } from '../api.ts';
import { useLoad } from '../useLoad.ts';
import type { WebRole as RoleRow } from '../../../src/api/webapi.ts';

const TEMPLATE = `kind: role
version: v1
metadata:
  name: new-role
spec:
  options:
    max_session_ttl: 8h
  allow:
    logins: ['{{internal.logins}}']
    node_labels:
      env: staging
    rules:
      - resources: [node]
        verbs: [list, read]
`;

export function Roles() {
  const { data, error, reload } = useLoad<{ roles: RoleRow[] }>('/webapi/roles');
  const [editing, setEditing] = useState<{ name?: string; yaml: string } | undefined>();
  const [problem, setProblem] = useState('');
  const [saved, setSaved] = useState('');
  const save = async () => {
    if (!editing) return;
    setProblem('');
    setSaved('');
    try {
      const r = await api<{ name: string; yaml: string }>('PUT', '/webapi/roles', { yaml: editing.yaml });
      setEditing({ name: r.name, yaml: r.yaml });
      setSaved(`Saved role ${r.name}.`);
      reload();
    } catch (err) {
      setProblem(err instanceof ApiError ? err.message : 'could not save');
    }
  };
  const remove = async (name: string) => {
    if (!confirm(`Delete role ${name}?`)) return;
    try {
      await api('DELETE', `/webapi/roles/${encodeURIComponent(name)}`);
      setEditing(undefined);
      reload();
    } catch (err) {
      setProblem(err instanceof ApiError ? err.message : 'could not delete');
    }
  };
  return (
    <section>
      <div className="titlebar">
        <h1>Roles</h1>
        <button
          onClick={() => {
            setEditing({ yaml: TEMPLATE });
            setProblem('');
            setSaved('');
          }}
        >
          New role
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="split">
        <ul className="list card">
          {(data?.roles ?? []).map((r) => (
            <li key={r.name}>
              <button
                className={`link ${editing?.name === r.name ? 'active' : ''}`}
                onClick={() => {
                  setEditing({ name: r.name, yaml: r.yaml });
                  setProblem('');
                  setSaved('');
                }}
              >
                <strong>{r.name}</strong>
                <span className="muted small"> {r.description}</span>
              </button>
            </li>
          ))}
        </ul>
        {editing && (
          <div className="card editor">
            <textarea
              className="mono"
              spellCheck={false}
              value={editing.yaml}
              onChange={(e) => setEditing({ ...editing, yaml: e.target.value })}
              aria-label="Role YAML"
              rows={22}
            />
            {problem && (
              <p className="error" role="alert" data-testid="role-error">
                {problem}
              </p>
            )}
            {saved && <p className="ok">{saved}</p>}
            <div className="row">
              <button onClick={() => void save()}>Save</button>
              {editing.name && (
                <button className="danger" onClick={() => void remove(editing.name!)}>
                  Delete
                </button>
              )}
            </div>
          </div>
        )}
      </div>
    </section>
  );
}
