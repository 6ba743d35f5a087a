// The auth server's recording store: one asciicast file per session under a directory (the data
// dir's `recordings/` by default). A node appends a recording in chunks at the store's current size,
// so an upload cut off by a crash or a network error resumes where the store stopped; the last chunk
// closes it. Who may upload or read is decided in front of the store (api.ts); the store only keeps
// each recording to the node that started it and bounds what one recording may cost.
import fs from 'node:fs';
import path from 'node:path';
import { AlreadyExists, BadParameter, LimitExceeded, NotFound } from '../api/errors.ts';

const SID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MAX_RECORDING_BYTES = 1024 ** 3;
export const MAX_CHUNK_BYTES = 1024 * 1024;

export interface RecordingState {
  size: number;
  complete: boolean;
}

export class RecordingStore {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private paths(sid: string) {
    // The id names files: only a UUID, never a path a node could steer.
    if (!SID.test(sid)) throw new BadParameter('invalid session id');
    const base = path.join(this.dir, sid);
    return { part: `${base}.cast.part`, done: `${base}.cast`, owner: `${base}.owner` };
  }

  private owner(sid: string): string | undefined {
    try {
      return fs.readFileSync(this.paths(sid).owner, 'utf8');
    } catch {
      return undefined;
    }
  }

  state(sid: string): RecordingState | undefined {
    const p = this.paths(sid);
    for (const [file, complete] of [
      [p.done, true],
      [p.part, false],
    ] as const) {
      try {
        return { size: fs.statSync(file).size, complete };
      } catch {
        // try the next
      }
    }
    return undefined;
  }

  /** Appends `data` at `offset` for `serverId`'s session and returns the size the store now holds. */
  append(sid: string, serverId: string, offset: number, data: Uint8Array): RecordingState {
    const p = this.paths(sid);
    if (data.length > MAX_CHUNK_BYTES) throw new LimitExceeded(`a recording chunk is at most ${MAX_CHUNK_BYTES} bytes`);
    const owner = this.owner(sid);
    if (owner === undefined) {
      fs.writeFileSync(p.owner, serverId, { mode: 0o600, flag: 'wx' });
    } else if (owner !== serverId) {
      throw new AlreadyExists('this session was recorded by another node');
    }
    const state = this.state(sid) ?? { size: 0, complete: false };
    if (state.complete) return state; // a retried final chunk after success
    if (offset !== state.size || data.length === 0) return state;
    if (state.size + data.length > MAX_RECORDING_BYTES) throw new LimitExceeded('recording is too large');
    fs.appendFileSync(p.part, data, { mode: 0o600 });
    return { size: state.size + data.length, complete: false };
  }

  /** Closes the recording: it is read-only from now on. */
  complete(sid: string, serverId: string): RecordingState {
    const p = this.paths(sid);
    if (this.owner(sid) !== serverId) throw new NotFound('no such recording upload');
    const state = this.state(sid);
    if (!state) throw new NotFound('no such recording upload');
    if (!state.complete) {
      const fd = fs.openSync(p.part, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(p.part, p.done);
    }
    return { size: state.size, complete: true };
  }

  read(sid: string, offset: number, limit: number): { data: Buffer } & RecordingState {
    const p = this.paths(sid);
    const state = this.state(sid);
    if (!state) throw new NotFound(`recording "${sid}" not found`);
    const len = Math.max(0, Math.min(limit, MAX_CHUNK_BYTES, state.size - offset));
    const data = Buffer.alloc(len);
    if (len > 0) {
      const fd = fs.openSync(state.complete ? p.done : p.part, 'r');
      try {
        fs.readSync(fd, data, 0, len, offset);
      } finally {
        fs.closeSync(fd);
      }
    }
    return { data, ...state };
  }
}
