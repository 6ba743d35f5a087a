// Sends recordings from the node's spool to the auth server's recording store, then removes them.
// A recording is sent when its session ends, and any left behind by a crash (no live session owns
// it) is sent on the next start. The upload resumes where the store stopped, so a node killed or cut
// off mid-upload neither loses nor duplicates a byte. In `node-sync` mode a running session's
// recording is streamed too, about once a second, so it reaches the store while it happens.
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { AuthClient } from '../api/client.ts';
import { castPath, isSessionId, metaPath, type RecordingMeta } from './recorder.ts';

const CHUNK = 512 * 1024;
const SCAN_INTERVAL_MS = 1000;

export type RecordingMode = 'node' | 'node-sync';

export class RecordingUploader {
  private readonly timer: NodeJS.Timeout;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** How much of each recording the store is known to hold. */
  private readonly sent = new Map<string, number>();

  constructor(
    private readonly dir: string,
    private readonly auth: AuthClient,
    private readonly isLive: (sid: string) => boolean,
    private readonly mode: RecordingMode,
    private readonly log: Logger,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.timer = setInterval(() => this.kick(), mode === 'node-sync' ? SCAN_INTERVAL_MS : SCAN_INTERVAL_MS * 10);
    this.timer.unref();
    this.kick();
  }

  /** Looks at the spool now (a session just ended); returns when that pass is done. */
  kick(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        void this.kick();
      }
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot read the recording spool');
      return;
    }
    for (const name of names) {
      if (this.closed) return;
      const sid = name.endsWith('.cast') ? name.slice(0, -5) : '';
      if (!isSessionId(sid)) continue;
      const live = this.isLive(sid);
      if (live && this.mode !== 'node-sync') continue;
      try {
        await this.upload(sid, !live);
      } catch (err) {
        this.log.warn({ sid, err: (err as Error).message }, 'cannot upload the recording yet; will retry');
      }
    }
  }

  private async upload(sid: string, final: boolean): Promise<void> {
    let meta: RecordingMeta;
    try {
      meta = JSON.parse(fs.readFileSync(metaPath(this.dir, sid), 'utf8')) as RecordingMeta;
    } catch {
      // The session died between creating its two files: there is nothing worth keeping.
      if (final) fs.rmSync(castPath(this.dir, sid), { force: true });
      return;
    }
    const fd = fs.openSync(castPath(this.dir, sid), 'r');
    try {
      const size = fs.fstatSync(fd).size;
      let offset = this.sent.get(sid) ?? 0;
      const buf = Buffer.alloc(CHUNK);
      for (;;) {
        const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, size - offset), offset);
        const last = final && offset + n >= size;
        if (n === 0 && !last) break;
        const res = await this.auth.uploadRecording({
          sid,
          offset: BigInt(offset),
          data: buf.subarray(0, n),
          final: last,
          meta: last ? JSON.stringify(meta) : '',
        });
        const stored = Number(res.size);
        if (stored !== offset + n) {
          // The store holds a different amount (an earlier attempt got further, or we restarted): resume there.
          if (stored > size || stored === offset)
            throw new Error(`the store holds ${stored} bytes of a ${size}-byte recording`);
          offset = stored;
          this.sent.set(sid, offset);
          continue;
        }
        offset = stored;
        this.sent.set(sid, offset);
        if (last) break;
      }
    } finally {
      fs.closeSync(fd);
    }
    if (final) {
      fs.rmSync(castPath(this.dir, sid), { force: true });
      fs.rmSync(metaPath(this.dir, sid), { force: true });
      this.sent.delete(sid);
      this.log.info({ sid, interrupted: !meta.ended }, 'recording uploaded');
    }
  }

  /** Recordings in the spool now (running or waiting to be sent). */
  spooled(): number {
    try {
      return fs.readdirSync(this.dir).filter((f) => f.endsWith('.cast')).length;
    } catch {
      return 0;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    this.closed = true;
  }
}
