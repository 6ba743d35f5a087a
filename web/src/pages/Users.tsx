import { useState, type FormEvent } from 'react';
import { api, ApiError } from '../api.ts';
import { useLoad } from '../useLoad.ts';
import type { User } from '../../../src/api/types.ts';

const split = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function Users() {
  const { data, error, reload } = useLoad<{ users: User[] }>('/webapi/users');
  const [form, setForm] = useState({ name: '', roles: 'access', logins: '' });
  const [link, setLink] = useState<{ what: string; url: string; expires: string } | undefined>();
  const [actionError, setActionError] = useState('');
  const act = async (fn: () => Promise<void>) => {
    setActionError('');
    try {
      await fn();
      reload();
    } catch (err) {
      setActionError(err instanceof ApiError ? err.message : 'failed');
    }
  };
  const add = (e: FormEvent) => {
    e.preventDefault();
    void act(async () => {
      const r = await api<{ invite_url: string; expires: string }>('POST', '/webapi/users', {
        name: form.name,
        roles: split(form.roles),
        logins: split(form.logins),
      });
      setLink({ what: `Invite link for ${form.name}`, url: r.invite_url, expires: r.expires });
      setForm({ ...form, name: '' });
    });
  };
  const reset = (name: string) =>
    act(async () => {
      const r = await api<{ reset_url: string; expires: string }>(
        'POST',
        `/webapi/users/${encodeURIComponent(name)}/reset`,
      );
      setLink({ what: `Password reset link for ${name}`, url: r.reset_url, expires: r.expires });
    });
  const remove = (name: string) =>
    confirm(`Delete user ${name}?`) && act(() => api('DELETE', `/webapi/users/${encodeURIComponent(name)}`));
  return (
    <section>
      <div className="titlebar">
        <h1>Users</h1>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <form className="filters card" onSubmit={add}>
        <label>
          Name
          <input name="name" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} required />
        </label>
        <label>
          Roles
          <input
            name="roles"
            value={form.roles}
            onChange={(e) => setForm({ ...form, roles: e.target.value })}
            required
          />
        </label>
        <label>
          Logins
          <input
            name="logins"
            placeholder="root, ubuntu"
            value={form.logins}
            onChange={(e) => setForm({ ...form, logins: e.target.value })}
          />
        </label>
        <button type="submit">Add user</button>
      </form>
      {actionError && (
        <p className="error" role="alert">
          {actionError}
        </p>
      )}
      {link && (
        <div className="card notice" data-testid="invite-link">
          <strong>{link.what}</strong> (works once, until {new Date(link.expires).toLocaleString()}; share it with that
          user only):
          <input readOnly className="mono" value={link.url} onFocus={(e) => e.target.select()} />
        </div>
      )}
      <table className="grid">
        <thead>
          <tr>
            <th>Name</th>
            <th>Roles</th>
            <th>Logins</th>
            <th>Created</th>
            <th className="right">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(data?.users ?? []).map((u) => (
            <tr key={u.metadata.name}>
              <td>
                <strong>{u.metadata.name}</strong>
                {u.spec.locked_until && new Date(u.spec.locked_until) > new Date() ? (
                  <span className="code warn"> locked</span>
                ) : null}
              </td>
              <td>{u.spec.roles.join(', ')}</td>
              <td>{(u.spec.traits.logins ?? []).join(', ')}</td>
              <td className="small">{u.spec.created ? new Date(u.spec.created).toLocaleDateString() : ''}</td>
              <td className="right nowrap">
                <button className="ghost" onClick={() => void reset(u.metadata.name)}>
                  Reset password
                </button>{' '}
                <button className="danger" onClick={() => void remove(u.metadata.name)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
