// Pieces shared by the sign-up page and the account page: an authenticator app's QR code with its
// secret, and recovery codes shown once.
import type { TOTPRegistration } from '../../../src/api/webapi.ts';

export function TOTPSetup({
  reg,
  code,
  setCode,
}: {
  reg: TOTPRegistration;
  code: string;
  setCode: (c: string) => void;
}) {
  return (
    <div className="totp">
      <img
        src={reg.qr}
        alt="QR code for your authenticator app"
        width={232}
        height={232}
        data-testid="totp-qr"
        data-uri={reg.uri}
      />
      <p className="small muted">
        Scan it with your authenticator app, or type the secret:{' '}
        <span className="mono" data-testid="totp-secret">
          {reg.secret}
        </span>
      </p>
      <label>
        Code from the app
        <input
          name="code"
          inputMode="numeric"
          autoComplete="one-time-code"
          pattern="[0-9]{6}"
          value={code}
          onChange={(e) => setCode(e.target.value)}
          required
        />
      </label>
    </div>
  );
}

export function RecoveryCodes({ codes }: { codes: string[] }) {
  return (
    <div className="notice">
      <p>
        If you lose your device, each of these codes signs you in once in place of a code. They are shown only now: keep
        them somewhere safe.
      </p>
      <ul className="mono recovery" data-testid="recovery-codes">
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ul>
    </div>
  );
}
