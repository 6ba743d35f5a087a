// wsh mfa: the user's own second factors. `add` registers a TOTP app: the auth server makes a secret,
// shown as a QR code and as text; a code from the app confirms it. The first device comes with
// recovery codes, printed once.
import { readFileSync } from 'node:fs';
import { BadParameter } from '../../api/errors.ts';
import { table } from '../table.ts';
import { isInteractive, readSecret, readStdinLine } from '../prompt.ts';
import { authClient } from './ssh.ts';

export async function addDevice(
  opts: { type: string; name: string; otpStdin: boolean },
  out: (s: string) => void,
): Promise<void> {
  if (opts.type !== 'totp')
    throw new BadParameter(`wsh registers totp devices (security keys are added in the web UI), not "${opts.type}"`);
  const auth = await authClient();
  const existing = (await auth.listMFADevices({})).devices;
  const begun = await auth.beginMFARegistration({ type: 'totp' });
  const { default: QRCode } = await import('qrcode');
  out('Scan this with your authenticator app (or enter the secret by hand):\n\n');
  out(await QRCode.toString(begun.uri, { type: 'terminal', small: true }));
  out(`\n  Secret: ${begun.secret}\n  URI:    ${begun.uri}\n\n`);
  const lines = opts.otpStdin ? readFileSync(0, 'utf8').split(/\r?\n/) : [];
  const ask = async (what: string): Promise<string> => {
    if (opts.otpStdin) return readStdinLine(what, lines.shift() ?? '').trim();
    if (!isInteractive()) throw new BadParameter(`${what} needed: run in a terminal or use --otp-stdin`);
    return (await readSecret(`${what[0]!.toUpperCase()}${what.slice(1)}: `)).trim();
  };
  // With a device already registered, a code from it proves the person adding one is the user.
  const existingCode = existing.length ? await ask(`code from your existing device "${existing[0]!.name}"`) : undefined;
  const code = await ask('code from the new device');
  const done = await auth.finishMFARegistration({
    type: 'totp',
    name: opts.name,
    code,
    existingCode: existingCode ?? '',
  });
  out(`Added TOTP device "${opts.name}" (${done.deviceId}).\n`);
  if (done.recoveryCodes.length) {
    out(
      '\nRecovery codes: each logs you in once instead of a code if you lose the device. Keep them safe; they ' +
        'are not shown again.\n',
    );
    for (const c of done.recoveryCodes) out(`  ${c}\n`);
  }
}

export async function listDevices(format: string): Promise<string> {
  const { devices } = await (await authClient()).listMFADevices({});
  if (format === 'json')
    return (
      JSON.stringify(
        devices.map(({ id, type, name, added }) => ({ id, type, name, added })),
        null,
        2,
      ) + '\n'
    );
  if (devices.length === 0) return 'no second-factor devices (wsh mfa add)\n';
  return table(
    ['Name', 'Type', 'Added', 'ID'],
    devices.map((d) => [d.name, d.type, d.added, d.id]),
  );
}

export async function removeDevice(device: string): Promise<string> {
  await (await authClient()).deleteMFADevice({ device });
  return `Removed second-factor device "${device}".\n`;
}
