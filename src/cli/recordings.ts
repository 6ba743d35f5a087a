// Session recordings and live sessions on the client side, shared by wsh and wctl: list them, fetch
// a recording from the auth server (through the proxy) in pages, and play it in the terminal.
import type { AuthClient } from '../api/client.ts';
import { BadParameter } from '../api/errors.ts';
import { formatDuration } from '../time/duration.ts';
import { listAllResources } from '../api/list.ts';
import type { SessionTracker } from '../api/types.ts';
import { castOutput, parseCast, schedule, type Cast } from '../api/asciicast.ts';
import { table } from './table.ts';

const PAGE = 1024 * 1024;
const MAX_DOWNLOAD = 1024 ** 3;

export async function listRecordings(auth: AuthClient, format: string): Promise<string> {
  const sessions = (await listAllResources(auth, 'session')).sort((a, b) =>
    b.spec.started.localeCompare(a.spec.started),
  );
  if (format === 'json') return JSON.stringify(sessions, null, 2) + '\n';
  if (format !== 'text') throw new BadParameter(`unknown format "${format}" (expected text or json)`);
  if (sessions.length === 0) return 'no recordings\n';
  return table(
    ['Session ID', 'User', 'Login', 'Node', 'Started', 'Duration', 'Participants'],
    sessions.map((s) => [
      s.metadata.name,
      s.spec.user,
      s.spec.login,
      s.spec.hostname,
      s.spec.started,
      formatDuration(new Date(s.spec.ended).getTime() - new Date(s.spec.started).getTime()) +
        (s.spec.interrupted ? ' (cut short)' : ''),
      s.spec.participants.join(', '),
    ]),
  );
}

export async function listLiveSessions(auth: AuthClient, format: string): Promise<string> {
  const sessions = (await listAllResources(auth, 'session_tracker')).sort((a, b) =>
    b.spec.started.localeCompare(a.spec.started),
  );
  if (format === 'json') return JSON.stringify(sessions, null, 2) + '\n';
  if (format !== 'text') throw new BadParameter(`unknown format "${format}" (expected text or json)`);
  if (sessions.length === 0) return 'no live sessions\n';
  return table(
    ['Session ID', 'User', 'Login', 'Node', 'Started', 'Participants'],
    sessions.map((s) => [
      s.metadata.name,
      s.spec.user,
      s.spec.login,
      s.spec.hostname,
      s.spec.started,
      s.spec.participants.map((p) => `${p.user} (${p.mode})`).join(', '),
    ]),
  );
}

export async function findLiveSession(auth: AuthClient, sid: string): Promise<SessionTracker> {
  const found = (await listAllResources(auth, 'session_tracker')).find((s) => s.metadata.name === sid);
  if (!found) throw new BadParameter(`no live session ${sid} that you may see (wsh sessions ls lists them)`);
  return found;
}

/** The whole recording, page by page. */
export async function fetchRecording(auth: AuthClient, sid: string): Promise<Buffer> {
  if (!/^[0-9a-f-]{36}$/.test(sid))
    throw new BadParameter(`"${sid}" is not a session id (wsh recordings ls lists them)`);
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const page = await auth.getRecording({ sid, offset: BigInt(offset), limit: PAGE });
    parts.push(Buffer.from(page.data));
    offset += page.data.length;
    if (offset > MAX_DOWNLOAD) throw new BadParameter('recording is too large');
    if (page.data.length === 0 || offset >= Number(page.size)) break;
  }
  return Buffer.concat(parts);
}

export function readCast(data: Buffer): Cast {
  try {
    return parseCast(data.toString('utf8'));
  } catch (err) {
    throw new BadParameter(`the recording cannot be read: ${(err as Error).message}`);
  }
}

/** `--format`: asciicast (the file as stored), json ({header, events}), text (the output only). */
export function dumpRecording(data: Buffer, format: string): string | Buffer {
  if (format === 'asciicast') return data;
  const cast = readCast(data);
  if (format === 'json') return JSON.stringify(cast) + '\n';
  if (format === 'text') return castOutput(cast);
  throw new BadParameter(`unknown format "${format}" (expected asciicast, json or text)`);
}

/** Plays the output at its recorded pace (times `speed`; pauses capped at `maxIdle` seconds). */
export async function play(cast: Cast, out: NodeJS.WritableStream, speed: number, maxIdle: number): Promise<void> {
  if (!(speed > 0 && speed <= 1000)) throw new BadParameter('--speed must be a number above 0 (e.g. 0.5, 2)');
  for (const { delayMs, event } of schedule(cast, speed, maxIdle)) {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    if (event[1] === 'o' && !out.write(event[2])) await new Promise((r) => out.once('drain', r));
  }
}
