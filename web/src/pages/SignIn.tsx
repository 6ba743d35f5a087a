import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Me } from '../api.ts';
import type { SecondFactorMode } from '../../../src/api/webapi.ts';
import { secondFactorMode, signWithKey, takesTOTP, takesWebAuthn } from '../mfa.ts';

// One form. With the cluster's second factor on, the code (authenticator app or recovery code) goes in
// the same request as the password; a security key needs a challenge first (step one, the same answer for
// any password), then the key's answer goes with the password in that request's `second_factor`.
export function SignIn({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [mode, setMode] = useState<SecondFactorMode | undefined>();
  const [error, setError] = useState('');
  const [busy, setBusy] = useState<'' | 'code' | 'key'>('');
  useEffect(() => {
    secondFactorMode().then(setMode, () => setMode('off'));
  }, []);
  const problem = (err: unknown) =>
    setError(err instanceof ApiError || err instanceof Error ? err.message : 'sign-in failed');

  const withCode = async (e: FormEvent) => {
    e.preventDefault();
    if (mode === 'webauthn') return void withKey();
    setBusy('code');
    setError('');
    try {
      const body = mode && mode !== 'off' ? { user, password, second_factor: code.trim() } : { user, password };
      onSignedIn(await api<Me>('POST', '/webapi/sessions/web', body));
    } catch (err) {
      problem(err);
    } finally {
      setBusy('');
    }
  };
  const withKey = async () => {
    setBusy('key');
    setError('');
    try {
      const challenge = await api<{ webauthn_options: unknown; totp: boolean }>('POST', '/webapi/mfa/login/begin', {
        user,
        password,
      });
      // Null only when the cluster takes no security keys. Step one answers any name and password alike (decoy
      // keys for a name without any): a mistyped name shows up here, as the browser finding no key for it.
      if (!challenge.webauthn_options) throw new Error('this cluster takes codes from an authenticator app only');
      const assertion = await signWithKey(challenge.webauthn_options).catch((err: Error) => {
        throw new Error(`${err.message} (only a key registered to this user name can answer: check the name)`);
      });
      onSignedIn(
        await api<Me>('POST', '/webapi/sessions/web', { user, password, second_factor: JSON.stringify(assertion) }),
      );
    } catch (err) {
      problem(err);
    } finally {
      setBusy('');
    }
  };

  const codeField = mode !== undefined && mode !== 'off' && takesTOTP(mode);
  const keyButton = mode !== undefined && mode !== 'off' && takesWebAuthn(mode);
  return (
    <div className="center">
      <form className="card narrow" onSubmit={(e) => void withCode(e)}>
        <h1>Sign in to Ward</h1>
        <label>
          User name
          <input
            name="user"
            autoComplete="username"
            value={user}
            onChange={(e) => setUser(e.target.value)}
            autoFocus
            required
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        {codeField && (
          <label>
            Authenticator code
            <input
              name="otp"
              inputMode="numeric"
              autoComplete="one-time-code"
              placeholder={mode === 'on' ? '123456, or use your security key' : '123456 or a recovery code'}
              value={code}
              onChange={(e) => setCode(e.target.value)}
              required={mode === 'otp'}
            />
          </label>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        {mode !== 'webauthn' && (
          <button type="submit" disabled={busy !== '' || mode === undefined}>
            {busy === 'code' ? 'Signing in…' : 'Sign in'}
          </button>
        )}
        {keyButton && (
          <button
            type={mode === 'webauthn' ? 'submit' : 'button'}
            className={mode === 'on' ? 'ghost' : ''}
            disabled={busy !== ''}
            onClick={mode === 'on' ? () => void withKey() : undefined}
          >
            {busy === 'key' ? 'Touch your security key…' : 'Sign in with a security key'}
          </button>
        )}
      </form>
    </div>
  );
}
