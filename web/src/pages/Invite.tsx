import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Me } from '../api.ts';

export function Invite({ kind, token, onSignedIn }: { kind: 'invite' | 'reset'; token: string; onSignedIn: (me: Me) => void }) {
  const [info, setInfo] = useState<{ user: string; expires: string } | undefined>();
  const [error, setError] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  useEffect(() => {
    api<{ user: string; expires: string }>('GET', `/webapi/invites/${token}`).then(setInfo, (err: Error) => setError(err.message));
  }, [token]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (password !== confirm) return setError('the two passwords differ');
    setError('');
    try {
      onSignedIn(await api<Me>('POST', `/webapi/invites/${token}`, { password }));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'could not set the password');
    }
  };
  return (
    <div className="center">
      <form className="card narrow" onSubmit={(e) => void submit(e)}>
        <h1>{kind === 'invite' ? 'Welcome to Ward' : 'Reset your password'}</h1>
        {info ? (
          <>
            <p>Choose a password for <strong>{info.user}</strong>. This link works once, until {new Date(info.expires).toLocaleString()}.</p>
            <label>New password<input name="password" type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={8} autoFocus /></label>
            <label>Confirm password<input name="confirm" type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} required /></label>
            {error && <p className="error" role="alert">{error}</p>}
            <button type="submit">Set password and sign in</button>
          </>
        ) : (
          <p className={error ? 'error' : 'muted'}>{error || 'Checking the link…'}</p>
        )}
      </form>
    </div>
  );
}
