import { useState, type FormEvent } from 'react';
import { api, ApiError, type Me } from '../api.ts';

export function SignIn({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      // The second factor goes in `second_factor` of this same request once the cluster has MFA: a
      // second step of this form asks for it when the proxy says it is required.
      onSignedIn(await api<Me>('POST', '/webapi/sessions/web', { user, password }));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'sign-in failed');
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="center">
      <form className="card narrow" onSubmit={(e) => void submit(e)}>
        <h1>Sign in to Ward</h1>
        <label>User name<input name="user" autoComplete="username" value={user} onChange={(e) => setUser(e.target.value)} autoFocus required /></label>
        <label>Password<input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required /></label>
        {error && <p className="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </div>
  );
}
