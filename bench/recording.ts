// What recording costs an interactive session: terminal output through a PTY session (`ssh -tt`),
// Ward (proxy + node, every byte written to the asciicast recording as it passes, then uploaded) next
// to OpenSSH sshd on loopback (no recording). Also reports the recording's size against the output.
//   node --import tsx bench/recording.ts [--mb 100]
import { execFile as execFileCb } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { result, type BenchResult } from './result.ts';
import { startSshd, startWard } from './ssh.ts';

const execFile = promisify(execFileCb);

/** MB/s of base64 text printed on a PTY on the far side and counted here. */
async function ptyOutput(args: string[], env: NodeJS.ProcessEnv, mb: number): Promise<{ mbps: number; bytes: number }> {
  const raw = Math.round((mb * 1e6 * 3) / 4); // base64 makes 4 bytes of 3
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = `ssh -tt ${args.map(q).join(' ')} 'head -c ${raw} /dev/zero | base64 -w 100' </dev/null | wc -c`;
  const start = performance.now();
  const { stdout } = await execFile('bash', ['-c', cmd], { env, timeout: 600_000 });
  const seconds = (performance.now() - start) / 1000;
  const bytes = Number(stdout.trim());
  return { mbps: bytes / 1e6 / seconds, bytes };
}

export async function benchRecording(opts: { mb: number }): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ward-bench-rec-'));
  mkdirSync(join(dir, 'ward'));
  mkdirSync(join(dir, 'sshd'));
  const ward = await startWard(join(dir, 'ward'), []);
  const sshd = await startSshd(join(dir, 'sshd'));
  try {
    await ptyOutput(ward.target.args, ward.target.env, 5); // warm-up
    await ptyOutput(sshd.target.args, sshd.target.env, 5);
    const store = join(dir, 'ward', 'data', 'recordings');
    const before = new Set(readdirSync(store));
    const w = await ptyOutput(ward.target.args, ward.target.env, opts.mb);
    const r = await ptyOutput(sshd.target.args, sshd.target.env, opts.mb);
    // The upload happens when the session ends: wait for the new recording in the auth server's store.
    let size = 0;
    for (let i = 0; i < 300 && !size; i++) {
      const fresh = readdirSync(store).filter((f) => f.endsWith('.cast') && !before.has(f));
      if (fresh.length) size = statSync(join(store, fresh[0]!)).size;
      else await new Promise((res) => setTimeout(res, 100));
    }
    const overhead = size / w.bytes;
    console.log(
      `recording: ${opts.mb} MB of terminal output: ward (recorded) ${w.mbps.toFixed(0)} MB/s, sshd ` +
        `${r.mbps.toFixed(0)} MB/s (${(w.mbps / r.mbps).toFixed(2)}x); ` +
        `recording ${(size / 1e6).toFixed(1)} MB for ${(w.bytes / 1e6).toFixed(1)} MB of output ` +
        `(${overhead.toFixed(2)}x)`,
    );
    const note =
      'ssh -tt, base64 text printed on the PTY; ward = proxy + node with the session recorded (asciicast, ' +
      'spooled then uploaded); reference = sshd, not recorded';
    return [
      result(`interactive output through a PTY, ${opts.mb} MB, recorded`, w.mbps, r.mbps, 'MB/s', note),
      {
        ...result(
          'recording size / terminal output',
          overhead,
          null,
          'x',
          'asciicast v2 JSON lines of the same session, as stored by the auth server',
        ),
        ratio: null,
      },
    ];
  } finally {
    sshd.stop();
    await ward.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ args: process.argv.slice(2), strict: false, options: { mb: { type: 'string' } } });
  const { printTable } = await import('./result.ts');
  printTable(await benchRecording({ mb: Number(values.mb ?? 100) }));
}
