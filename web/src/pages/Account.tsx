import { useState, type FormEvent } from 'react';
import { api, ApiError } from '../api.ts';
import { registerKey, signWithKey } from '../mfa.ts';
import { useLoad } from '../useLoad.ts';
import type { TOTPRegistration, WebMFADevice as Device } from '../../../src/api/webapi.ts';
import { RecoveryCodes, TOTPSetup } from './MFAParts.tsx';

// The signed-in user's second factors: list, remove, add an authenticator app (QR code) or a security
// key. Adding one when the user has a device already takes proof from one of them (a code, or a touch
// of a key), which the auth server checks.
export function Account() {
  const { data, error, reload } = useLoad<{ devices: Device[] }>('/webapi/mfa/devices');
  const [adding, setAdding] = useState<'' | 'totp' | 'webauthn'>('');
  const [totp, setTOTP] = useState<TOTPRegistration | undefined>();
  const [name, setName] = useState('');
  const [code, setCode] = useState('');
  const [existingCode, setExistingCode] = useState('');
  const [problem, setProblem] = useState('');
  const [notice, setNotice] = useState('');
  const [codes, setCodes] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const devices = data?.devices ?? [];
  const hasKey = devices.some((d) => d.type === 'webauthn');
  const fail = (err: unknown) => setProblem(err instanceof ApiError || err instanceof Error ? err.message : 'failed');

  const start = async (type: 'totp' | 'webauthn') => {
    setProblem('');
    setNotice('');
    setCodes([]);
    setName('');
    setCode('');
    setExistingCode('');
    setTOTP(undefined);
    setAdding(type);
    if (type === 'totp') await api<TOTPRegistration>('POST', '/webapi/mfa/devices/begin', { type }).then(setTOTP, fail);
  };
  /** Proof from a device the user has: the code typed, else a touch of one of their security keys. */
  const proof = async (): Promise<Record<string, unknown>> => {
    if (devices.length === 0) return {};
    if (existingCode.trim()) return { existing_code: existingCode.trim() };
    if (!hasKey) throw new Error('give a code from the authenticator app you already have');
    const challenge = await api<{ webauthn_options: unknown }>('POST', '/webapi/mfa/challenge');
    return { existing_assertion: await signWithKey(challenge.webauthn_options) };
  };
  const finish = async (e: FormEvent) => {
    e.preventDefault();
    setProblem('');
    setBusy(true);
    try {
      const body: Record<string, unknown> = { type: adding, name, ...(await proof()) };
      if (adding === 'totp') body.code = code.trim();
      else {
        const begin = await api<{ webauthn_options: unknown }>('POST', '/webapi/mfa/devices/begin', {
          type: 'webauthn',
        });
        body.webauthn_response = await registerKey(begin.webauthn_options);
      }
      const r = await api<{ recovery_codes: string[] }>('POST', '/webapi/mfa/devices/finish', body);
      setCodes(r.recovery_codes);
      setNotice(`Added ${adding === 'totp' ? 'authenticator app' : 'security key'} ${name || ''}`.trim() + '.');
      setAdding('');
      reload();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };
  const remove = async (d: Device) => {
    setProblem('');
    setNotice('');
    try {
      await api('DELETE', `/webapi/mfa/devices/${d.id}`);
      setNotice(`Removed ${d.name}.`);
      reload();
    } catch (err) {
      fail(err);
    }
  };

  return (
    <section>
      <div className="titlebar">
        <h1>Account: second factors</h1>
        <span className="spacer" />
        <button onClick={() => void start('totp')}>Add authenticator app</button>
        <button onClick={() => void start('webauthn')}>Add security key</button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {notice && (
        <p className="ok" role="status">
          {notice}
        </p>
      )}
      {codes.length > 0 && (
        <div className="card">
          <RecoveryCodes codes={codes} />
        </div>
      )}
      {adding && (
        <form className="card narrow add-device" onSubmit={(e) => void finish(e)}>
          <h2>{adding === 'totp' ? 'Add an authenticator app' : 'Add a security key'}</h2>
          {adding === 'totp' &&
            (totp ? (
              <TOTPSetup reg={totp} code={code} setCode={setCode} />
            ) : (
              <p className="muted">Preparing the QR code…</p>
            ))}
          <label>
            Device name
            <input
              name="name"
              placeholder={adding === 'totp' ? 'phone' : 'yubikey'}
              value={name}
              onChange={(e) => setName(e.target.value)}
              maxLength={64}
            />
          </label>
          {devices.length > 0 && (
            <label>
              Code from a device you have{hasKey ? ' (or leave empty and touch your security key)' : ''}
              <input
                name="existing"
                inputMode="numeric"
                autoComplete="one-time-code"
                value={existingCode}
                onChange={(e) => setExistingCode(e.target.value)}
                required={!hasKey}
              />
            </label>
          )}
          {problem && (
            <p className="error" role="alert">
              {problem}
            </p>
          )}
          <div className="row">
            <button type="submit" disabled={busy}>
              {adding === 'totp' ? 'Add app' : busy ? 'Touch your security key…' : 'Register key'}
            </button>
            <button type="button" className="ghost" onClick={() => setAdding('')}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {!adding && problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <table className="grid">
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Added</th>
            <th className="right" />
          </tr>
        </thead>
        <tbody>
          {devices.map((d) => (
            <tr key={d.id} data-device={d.name}>
              <td>{d.name}</td>
              <td>{d.type === 'totp' ? 'authenticator app' : 'security key'}</td>
              <td>{new Date(d.added).toLocaleString()}</td>
              <td className="right">
                <button className="danger" onClick={() => void remove(d)}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && devices.length === 0 && <p className="muted">No second-factor devices.</p>}
    </section>
  );
}
