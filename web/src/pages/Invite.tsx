import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Me } from '../api.ts';
import type { TOTPRegistration, WebInviteLink as LinkInfo } from '../../../src/api/webapi.ts';
import { registerKey, takesTOTP, takesWebAuthn } from '../mfa.ts';
import { RecoveryCodes, TOTPSetup } from './MFAParts.tsx';

// Sign-up (invite) and reset links. When the cluster needs a second factor, the same form registers
// the user's first device (the link is what allows it: without a device they could not sign in), and
// the recovery codes are shown once before the user goes on.
export function Invite({
  kind,
  token,
  onSignedIn,
}: {
  kind: 'invite' | 'reset';
  token: string;
  onSignedIn: (me: Me) => void;
}) {
  const [info, setInfo] = useState<LinkInfo | undefined>();
  const [error, setError] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [factor, setFactor] = useState<'totp' | 'webauthn'>('totp');
  const [totp, setTOTP] = useState<TOTPRegistration | undefined>();
  const [code, setCode] = useState('');
  const [deviceName, setDeviceName] = useState('');
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<{ me: Me; codes: string[] } | undefined>();
  useEffect(() => {
    api<LinkInfo>('GET', `/webapi/invites/${token}`).then(
      (i) => {
        setInfo(i);
        if (!takesTOTP(i.second_factor)) setFactor('webauthn');
      },
      (err: Error) => setError(err.message),
    );
  }, [token]);
  const mfa = info !== undefined && info.second_factor !== 'off';
  // The authenticator app's secret is made when that choice is shown, so its QR code is there to scan.
  useEffect(() => {
    if (!mfa || factor !== 'totp' || totp) return;
    api<TOTPRegistration>('POST', `/webapi/invites/${token}/mfa`, { type: 'totp' }).then(setTOTP, (err: Error) =>
      setError(err.message),
    );
  }, [mfa, factor, totp, token]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (password !== confirm) return setError('the two passwords differ');
    setError('');
    setBusy(true);
    try {
      const body: Record<string, unknown> = { password };
      if (mfa && factor === 'totp') Object.assign(body, { second_factor: code.trim(), device_name: deviceName });
      if (mfa && factor === 'webauthn') {
        const begin = await api<{ webauthn_options: unknown }>('POST', `/webapi/invites/${token}/mfa`, {
          type: 'webauthn',
        });
        Object.assign(body, { webauthn_response: await registerKey(begin.webauthn_options), device_name: deviceName });
      }
      const r = await api<Me & { recovery_codes?: string[] }>('POST', `/webapi/invites/${token}`, body);
      if (r.recovery_codes?.length) setDone({ me: r, codes: r.recovery_codes });
      else onSignedIn(r);
    } catch (err) {
      setError(err instanceof ApiError || err instanceof Error ? err.message : 'could not set the password');
    } finally {
      setBusy(false);
    }
  };

  if (done) {
    return (
      <div className="center">
        <div className="card narrow">
          <h1>Save your recovery codes</h1>
          <RecoveryCodes codes={done.codes} />
          <button onClick={() => onSignedIn(done.me)}>I saved them: continue</button>
        </div>
      </div>
    );
  }
  const both = info ? takesTOTP(info.second_factor) && takesWebAuthn(info.second_factor) : false;
  return (
    <div className="center">
      <form className="card narrow" onSubmit={(e) => void submit(e)}>
        <h1>{kind === 'invite' ? 'Welcome to Ward' : 'Reset your password'}</h1>
        {info ? (
          <>
            <p>
              Choose a password for <strong>{info.user}</strong>. This link works once, until{' '}
              {new Date(info.expires).toLocaleString()}.
            </p>
            <label>
              New password
              <input
                name="password"
                type="password"
                autoComplete="new-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
                minLength={8}
                autoFocus
              />
            </label>
            <label>
              Confirm password
              <input
                name="confirm"
                type="password"
                autoComplete="new-password"
                value={confirm}
                onChange={(e) => setConfirm(e.target.value)}
                required
              />
            </label>
            {mfa && (
              <fieldset className="mfa">
                <legend>
                  Second factor{' '}
                  {kind === 'reset' && <span className="muted small">(replaces the devices you had)</span>}
                </legend>
                {both && (
                  <div className="segmented" role="radiogroup" aria-label="Second factor">
                    <label>
                      <input
                        type="radio"
                        name="factor"
                        checked={factor === 'totp'}
                        onChange={() => setFactor('totp')}
                      />{' '}
                      Authenticator app
                    </label>
                    <label>
                      <input
                        type="radio"
                        name="factor"
                        checked={factor === 'webauthn'}
                        onChange={() => setFactor('webauthn')}
                      />{' '}
                      Security key
                    </label>
                  </div>
                )}
                {factor === 'totp' ? (
                  totp ? (
                    <TOTPSetup reg={totp} code={code} setCode={setCode} />
                  ) : (
                    <p className="muted">Preparing the QR code…</p>
                  )
                ) : (
                  <p className="muted small">
                    After the password, your browser asks you to touch your security key (or use this device's screen
                    lock).
                  </p>
                )}
                <label>
                  Device name
                  <input
                    name="device"
                    placeholder={factor === 'totp' ? 'phone' : 'yubikey'}
                    value={deviceName}
                    onChange={(e) => setDeviceName(e.target.value)}
                    maxLength={64}
                  />
                </label>
              </fieldset>
            )}
            {error && (
              <p className="error" role="alert">
                {error}
              </p>
            )}
            <button type="submit" disabled={busy}>
              {!mfa
                ? 'Set password and sign in'
                : factor === 'totp'
                  ? 'Set password, add the app and sign in'
                  : 'Set password, register the key and sign in'}
            </button>
          </>
        ) : (
          <p className={error ? 'error' : 'muted'}>{error || 'Checking the link…'}</p>
        )}
      </form>
    </div>
  );
}
