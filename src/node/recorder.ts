// Session recording at the node: an interactive session's terminal output, resizes and participant
// markers go to an asciicast v2 file in the node's spool directory as they happen, next to a small
// metadata file. The uploader (uploader.ts) sends finished recordings to the auth server and removes
// them; a recording left behind by a crash is sent on the next start. Writes are synchronous so a
// node killed with SIGKILL loses nothing it had already shown the user (the page cache keeps it).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import { writeFileAtomic } from '../files/atomic-write.ts';
import { encodeEvent, encodeHeader } from '../api/asciicast.ts';

export interface RecordingMeta {
  sid: string;
  server_id: string;
  hostname: string;
  user: string;
  login: string;
  started: string;
  /** Set when the session ends; a recording without it was cut short by a node crash. */
  ended?: string;
  participants: string[];
}

const SID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isSessionId(s: string): boolean {
  return SID.test(s);
}

export const castPath = (dir: string, sid: string): string => path.join(dir, `${sid}.cast`);
export const metaPath = (dir: string, sid: string): string => path.join(dir, `${sid}.json`);

/**
 * Terminal output arrives in chunks that may split a UTF-8 sequence; asciicast stores text, so a
 * decoder carries the partial sequence into the next chunk. Bytes that are not UTF-8 at all become
 * U+FFFD (the format cannot hold them), as asciinema's own recorder does.
 */
export class OutputDecoder {
  private readonly decoder = new StringDecoder('utf8');
  write(chunk: Buffer): string {
    return this.decoder.write(chunk);
  }
  end(): string {
    return this.decoder.end();
  }
}

export class SessionRecorder {
  private fd: number | undefined;
  private readonly decoder = new OutputDecoder();
  private readonly t0 = performance.now();
  private failed = false;

  private constructor(
    private readonly dir: string,
    private readonly meta: RecordingMeta,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Creates the spool files; throws (and the session is refused) if the node cannot record. */
  static open(
    dir: string,
    meta: RecordingMeta,
    size: { cols: number; rows: number; term: string },
    onError: (err: Error) => void,
  ): SessionRecorder {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const rec = new SessionRecorder(dir, meta, onError);
    // No fsync: what must survive is the node process being killed, which the page cache covers; an
    // fsync per session start/join/end stalled the event loop with 200 sessions starting at once.
    writeFileAtomic(metaPath(dir, meta.sid), JSON.stringify(meta), 0o600, { durable: false });
    rec.fd = fs.openSync(castPath(dir, meta.sid), 'wx', 0o600);
    const header = encodeHeader({
      version: 2,
      width: size.cols,
      height: size.rows,
      timestamp: Math.floor(new Date(meta.started).getTime() / 1000),
      title: `${meta.user} as ${meta.login}@${meta.hostname}`,
      env: { TERM: size.term },
    });
    rec.write(header);
    return rec;
  }

  private now(): number {
    return (performance.now() - this.t0) / 1000;
  }

  private write(line: string): void {
    if (this.fd === undefined || this.failed) return;
    try {
      fs.writeSync(this.fd, line);
    } catch (err) {
      // Disk full or gone: the session cannot be recorded any more, so it must not go on (fail closed).
      this.failed = true;
      this.onError(err as Error);
    }
  }

  output(chunk: Buffer): void {
    const text = this.decoder.write(chunk);
    if (text) this.write(encodeEvent(this.now(), 'o', text));
  }

  resize(cols: number, rows: number): void {
    this.write(encodeEvent(this.now(), 'r', `${cols}x${rows}`));
  }

  marker(text: string): void {
    this.write(encodeEvent(this.now(), 'm', text));
  }

  addParticipant(user: string): void {
    if (!this.meta.participants.includes(user)) {
      this.meta.participants.push(user);
      this.saveMeta();
    }
  }

  private saveMeta(): void {
    try {
      writeFileAtomic(metaPath(this.dir, this.meta.sid), JSON.stringify(this.meta), 0o600, { durable: false });
    } catch (err) {
      if (!this.failed) {
        this.failed = true;
        this.onError(err as Error);
      }
    }
  }

  /** A session that never started: nothing to keep. */
  discard(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    fs.rmSync(castPath(this.dir, this.meta.sid), { force: true });
    fs.rmSync(metaPath(this.dir, this.meta.sid), { force: true });
  }

  /** Ends the recording: it is then ready to upload. */
  close(ended: Date): void {
    if (this.fd === undefined) return;
    const rest = this.decoder.end();
    if (rest) this.write(encodeEvent(this.now(), 'o', rest));
    fs.closeSync(this.fd);
    this.fd = undefined;
    this.meta.ended = ended.toISOString();
    this.saveMeta();
  }
}
