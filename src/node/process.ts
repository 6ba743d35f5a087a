// The processes a node session runs, wired to an SSH channel: plain pipes (exec, sftp-server) or a PTY
// (shells, `ssh -t`). Each runs as the session's OS user in its own session and process group, so a
// `signal` request or a dropped connection reaches the whole job, not just the shell.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import pty from 'node-pty';
import type { ServerChannel } from 'ssh2';
import type pino from 'pino';
import type { OSUser } from './osuser.ts';

export interface ExitResult {
  code: number | null;
  signal: string | null; // without "SIG", as the exit-signal request wants it (RFC 4254 6.10)
}

export interface RunningProcess {
  readonly pid: number;
  /** Signals the process group; a no-op once the process is gone. */
  signal(sig: NodeJS.Signals): void;
  /** eow@openssh.com: the client takes no more output, so the child should get EPIPE/SIGPIPE. */
  closeOutput(): void;
  resize(cols: number, rows: number): void;
  /** SIGHUP to the group, SIGKILL after a grace period if it is still running. */
  terminate(): void;
}

export interface SpawnOptions {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  channel: ServerChannel;
  log: pino.Logger;
  onExit(result: ExitResult): void;
}

const KILL_GRACE_MS = 2000;

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is gone.
  }
}

function stripSig(signal: string | null | undefined | number): string | null {
  return typeof signal === 'string' ? signal.replace(/^SIG/, '') : null;
}

/** Pipes stdin/stdout/stderr to the channel; exits after the child's output has all been read. */
export function spawnPiped(opts: SpawnOptions): RunningProcess {
  const { channel, log } = opts;
  // detached: setsid(), so the child leads a new process group we can signal as one.
  const child = spawn(opts.file, opts.args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: 'pipe' });
  let running = true;
  const finish = (result: ExitResult): void => {
    if (!running) return;
    running = false;
    opts.onExit(result);
  };
  child.on('error', (err) => {
    log.debug({ err: err.message, file: opts.file }, 'spawn failed');
    finish({ code: 127, signal: null });
  });
  // 'close' (not 'exit') fires once stdout and stderr are drained, so no output is lost after exit-status.
  child.on('close', (code, signal) => finish({ code, signal: stripSig(signal) }));
  child.stdin.on('error', () => {}); // EPIPE when the child exits before reading all input
  child.stdout.on('error', () => {});
  child.stderr.on('error', () => {});
  channel.pipe(child.stdin); // channel EOF closes the child's stdin
  child.stdout.pipe(channel, { end: false });
  child.stderr.pipe(channel.stderr, { end: false });
  const pid = child.pid ?? 0;
  return {
    pid,
    signal(sig) {
      if (running && pid > 0) signalGroup(pid, sig);
    },
    closeOutput() {
      child.stdout.unpipe(channel);
      child.stdout.destroy();
    },
    resize() {},
    terminate() {
      if (!running || pid <= 0) return;
      signalGroup(pid, 'SIGHUP');
      setTimeout(() => running && signalGroup(pid, 'SIGKILL'), KILL_GRACE_MS).unref();
    },
  };
}

export interface PtyOptions extends Omit<SpawnOptions, 'channel'> {
  term: string;
  cols: number;
  rows: number;
  user: OSUser;
  /** Everything the program prints. The caller fans it out (owner, joined users, recording). */
  onData(data: Buffer): void;
}

export interface PtyProcess extends RunningProcess {
  /** Keystrokes to the terminal. */
  write(data: Buffer): void;
  /** Stop reading output until resume(): the readers cannot keep up (SSH window full). */
  pause(): void;
  resume(): void;
}

/** Runs the program on a new PTY (forkpty: its own session, the PTY as controlling terminal). */
export function spawnPty(opts: PtyOptions): PtyProcess {
  const { log } = opts;
  // encoding null: bytes pass through untouched; the client's terminal does the decoding.
  const p = pty.spawn(opts.file, opts.args, {
    name: opts.term,
    cols: opts.cols,
    rows: opts.rows,
    cwd: opts.cwd,
    env: opts.env,
    encoding: null,
  } as pty.IPtyForkOptions);
  let running = true;
  let discard = false;
  // As sshd's pty_setowner: the terminal belongs to the user (group tty from the devpts mount), mode 0620.
  const ptsName = (p as unknown as { ptsName?: string }).ptsName;
  if (ptsName?.startsWith('/dev/pts/')) {
    try {
      fs.chownSync(ptsName, opts.user.uid, -1);
      fs.chmodSync(ptsName, 0o620);
    } catch (err) {
      log.debug({ err }, 'cannot give the pty to the user');
    }
  }
  p.onData((data) => {
    if (!discard) opts.onData(data as unknown as Buffer);
  });
  p.onExit(({ exitCode, signal }) => {
    running = false;
    opts.onExit(signal ? { code: null, signal: signalName(signal) } : { code: exitCode, signal: null });
  });
  const proc: PtyProcess = {
    pid: p.pid,
    write(data) {
      if (running) p.write(data as unknown as string);
    },
    pause() {
      if (running) p.pause();
    },
    resume() {
      if (running) p.resume();
    },
    signal(sig) {
      if (running) signalGroup(p.pid, sig);
    },
    closeOutput() {
      // A PTY has no output side to close on its own (the program would never see EPIPE): the reader of
      // this terminal is gone, so hang it up, as when a terminal disconnects.
      discard = true;
      p.resume();
      proc.terminate();
    },
    resize(cols, rows) {
      if (running) p.resize(cols, rows);
    },
    terminate() {
      if (!running) return;
      signalGroup(p.pid, 'SIGHUP');
      setTimeout(() => {
        if (running) signalGroup(p.pid, 'SIGKILL');
      }, KILL_GRACE_MS).unref();
    },
  };
  return proc;
}

function signalName(num: number): string | null {
  const entry = Object.entries(os.constants.signals).find(([, n]) => n === num);
  return entry ? entry[0].replace(/^SIG/, '') : null;
}
