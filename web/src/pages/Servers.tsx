import { useState } from 'react';
import type { Me } from '../api.ts';
import { allLabels, filterServers, type ServerRow } from '../lib/filter.ts';
import { useLoad } from '../useLoad.ts';

export function terminalURL(p: { node: string; host: string; login: string; join?: string; mode?: string }): string {
  const q = new URLSearchParams({ node: p.node, host: p.host, login: p.login });
  if (p.join) q.set('join', p.join);
  if (p.mode) q.set('mode', p.mode);
  return `/web/terminal?${q}`;
}

export function Servers({ me }: { me: Me }) {
  const { data, error } = useLoad<{ nodes: ServerRow[]; logins: string[] }>('/webapi/nodes');
  const [search, setSearch] = useState('');
  const [labels, setLabels] = useState<string[]>([]);
  const [logins, setLogins] = useState<Record<string, string>>({});
  const rows = filterServers(data?.nodes ?? [], search, labels);
  const available = (data?.logins ?? me.logins).filter(Boolean);
  const toggleLabel = (l: string) => setLabels((ls) => (ls.includes(l) ? ls.filter((x) => x !== l) : [...ls, l]));
  return (
    <section>
      <div className="titlebar">
        <h1>Servers</h1>
        <input
          className="search"
          type="search"
          placeholder="Search by name, address or label"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          aria-label="Search servers"
        />
        <select value="" onChange={(e) => e.target.value && toggleLabel(e.target.value)} aria-label="Filter by label">
          <option value="">Filter by label…</option>
          {allLabels(data?.nodes ?? []).map((l) => (
            <option key={l} value={l}>
              {l}
            </option>
          ))}
        </select>
      </div>
      {labels.length > 0 && (
        <p className="chips">
          {labels.map((l) => (
            <button key={l} className="chip on" onClick={() => toggleLabel(l)} title="Remove this filter">
              {l} ✕
            </button>
          ))}
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {data && available.length === 0 && <p className="muted">Your roles give you no login on any server.</p>}
      <table className="grid">
        <thead>
          <tr>
            <th>Name</th>
            <th>Address</th>
            <th>Labels</th>
            <th className="right">Connect</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((n) => {
            const login = logins[n.id] ?? available[0] ?? '';
            return (
              <tr key={n.id} data-node={n.hostname}>
                <td>
                  <strong>{n.hostname}</strong>
                  <div className="muted small mono">{n.id}</div>
                </td>
                <td className="mono small">{n.addr}</td>
                <td>
                  {Object.entries(n.labels).map(([k, v]) => (
                    <button
                      key={k}
                      className={`chip ${labels.includes(`${k}=${v}`) ? 'on' : ''}`}
                      onClick={() => toggleLabel(`${k}=${v}`)}
                    >
                      {k}={v}
                    </button>
                  ))}
                </td>
                <td className="right nowrap">
                  <select
                    value={login}
                    onChange={(e) => setLogins({ ...logins, [n.id]: e.target.value })}
                    aria-label={`Login on ${n.hostname}`}
                  >
                    {available.map((l) => (
                      <option key={l}>{l}</option>
                    ))}
                  </select>{' '}
                  <a
                    className={`button ${login ? '' : 'disabled'}`}
                    href={terminalURL({ node: n.id, host: n.hostname, login })}
                    target="_blank"
                    rel="noopener"
                  >
                    Connect
                  </a>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {data && rows.length === 0 && (
        <p className="muted">{data.nodes.length ? 'No server matches.' : 'No servers you may reach.'}</p>
      )}
    </section>
  );
}
