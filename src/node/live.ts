// Interactive sessions running on this node, and the people in them. A session's terminal output goes
// to every participant's channel and to its recording; keystrokes come from peers (observers only
// watch). The registry is what `wsh sessions ls` sees (through the session trackers the node reports)
// and what `wsh join` attaches to.
import type { ServerChannel } from 'ssh2';
import type { PtyProcess } from './process.ts';
import type { SessionRecorder } from './recorder.ts';

export type JoinMode = 'peer' | 'observer';

export interface Participant {
  id: string;
  user: string;
  mode: JoinMode;
  joined: Date;
  channel: ServerChannel;
}

export interface LiveSessionInfo {
  sid: string;
  user: string;
  login: string;
  started: Date;
  participants: Array<{ user: string; mode: JoinMode; joined: Date }>;
}

/** A participant whose channel buffers more than this is too slow to wait for: it is dropped. */
const MAX_LAGGING_BYTES = 8 * 1024 * 1024;

export class LiveSession {
  private readonly participants = new Map<string, Participant>();
  private proc: PtyProcess | undefined;
  private lastTypist = '';
  private stalled = new Set<string>();
  bytesOut = 0;
  bytesIn = 0;
  /** Everyone who was ever in the session, for session.end and the recording's index. */
  readonly everyone = new Set<string>();

  constructor(
    readonly sid: string,
    readonly user: string,
    readonly login: string,
    readonly started: Date,
    readonly recorder: SessionRecorder | undefined,
    private readonly onChange: (session: LiveSession) => void,
  ) {}

  attachProcess(proc: PtyProcess): void {
    this.proc = proc;
  }

  info(): LiveSessionInfo {
    return {
      sid: this.sid,
      user: this.user,
      login: this.login,
      started: this.started,
      participants: [...this.participants.values()].map((p) => ({ user: p.user, mode: p.mode, joined: p.joined })),
    };
  }

  join(p: Participant): void {
    this.participants.set(p.id, p);
    this.everyone.add(p.user);
    this.recorder?.addParticipant(p.user);
    if (this.participants.size > 1) this.recorder?.marker(`${p.user} joined as ${p.mode}`);
    this.onChange(this);
  }

  leave(id: string): void {
    const p = this.participants.get(id);
    if (!p) return;
    this.participants.delete(id);
    this.stalled.delete(id);
    if (this.stalled.size === 0) this.proc?.resume();
    this.recorder?.marker(`${p.user} left`);
    this.onChange(this);
  }

  /** Terminal output: to every participant and the recording, pausing the terminal while a reader is full. */
  output(data: Buffer): void {
    this.bytesOut += data.length;
    this.recorder?.output(data);
    for (const p of this.participants.values()) {
      if (p.channel.write(data)) continue;
      if (p.channel.writableLength > MAX_LAGGING_BYTES) {
        // An observer that stopped reading must not freeze everyone else's terminal forever.
        p.channel.close();
        continue;
      }
      if (!this.stalled.has(p.id)) {
        this.stalled.add(p.id);
        this.proc?.pause();
        p.channel.once('drain', () => {
          this.stalled.delete(p.id);
          if (this.stalled.size === 0) this.proc?.resume();
        });
      }
    }
  }

  input(from: Participant, data: Buffer): void {
    if (from.mode !== 'peer') return;
    this.bytesIn += data.length;
    // Who typed, not what: keystrokes include passwords typed at prompts that do not echo.
    if (this.participants.size > 1 && this.lastTypist !== from.user) this.recorder?.marker(`${from.user} typed`);
    this.lastTypist = from.user;
    this.proc?.write(data);
  }

  resize(cols: number, rows: number): void {
    this.recorder?.resize(cols, rows);
    this.proc?.resize(cols, rows);
  }

  /** The session's program ended: tell every joined participant and close their channels. */
  end(exit: (channel: ServerChannel) => void, ownerId: string): void {
    for (const p of this.participants.values()) {
      if (p.id !== ownerId) exit(p.channel);
    }
  }
}

export class SessionRegistry {
  private readonly sessions = new Map<string, LiveSession>();

  add(session: LiveSession): void {
    this.sessions.set(session.sid, session);
  }
  remove(sid: string): void {
    this.sessions.delete(sid);
  }
  get(sid: string): LiveSession | undefined {
    return this.sessions.get(sid);
  }
  list(): LiveSession[] {
    return [...this.sessions.values()];
  }
  has(sid: string): boolean {
    return this.sessions.has(sid);
  }
}
