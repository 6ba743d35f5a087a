// One SSH "session" channel on a node (RFC 4254 6): collects pty-req and env, then runs the shell, the
// command or the sftp subsystem as the login's OS user, relays window changes, signals and EOF, and
// reports exit-status / exit-signal. Audit: session.start, exec, subsystem, session.end.
import fs from 'node:fs';
import crypto from 'node:crypto';
import type { AcceptConnection, PseudoTtyInfo, RejectConnection, ServerChannel, Session } from 'ssh2';
import type { ConnContext } from './connection.ts';
import { commandAs, defaultPath } from './osuser.ts';
import { spawnPiped, spawnPty, type ExitResult, type RunningProcess } from './process.ts';
import { sftpServerPath } from './sftp.ts';
import { agentForwarder } from './agentforward.ts';
import { LiveSession, type JoinMode, type Participant } from './live.ts';
import { SessionRecorder } from './recorder.ts';
import { SftpRequestReader } from './sftpaudit.ts';

/** What `scp -t` (upload) / `scp -f` (download) on a path says, for the audit log; undefined if not scp. */
export function scpTransfer(command: string): { action: 'upload' | 'download'; path: string } | undefined {
  const m = /^scp((?:\s+-[a-zA-Z0-9]+)*)\s+(?:--\s+)?(.+)$/.exec(command.trim());
  if (!m) return undefined;
  const flags = m[1] ?? '';
  const action = /-[a-zA-Z]*t/.test(flags) ? 'upload' : /-[a-zA-Z]*f/.test(flags) ? 'download' : undefined;
  return action ? { action, path: m[2]!.replace(/^(['"])(.*)\1$/, '$2') } : undefined;
}

/** One reader, no recording: write the terminal's output to the channel, pausing it while the window is full. */
function writeOrPause(channel: ServerChannel, data: Buffer, proc: () => { pause(): void; resume(): void }): void {
  if (!channel.write(data)) {
    proc().pause();
    channel.once('drain', () => proc().resume());
  }
}

// Client `env` requests sshd would take with "AcceptEnv LANG LC_* TERM WARD_*"; anything else is dropped.
const ENV_ALLOWED = /^(LANG|LC_[A-Z_]+|TERM|WARD_[A-Z0-9_]+)$/;
const MAX_ENV_VARS = 64;
const MAX_ENV_VALUE = 4096;
const MAX_COMMAND = 64 * 1024;
const MAX_TERM_SIZE = 4096;
// The signals RFC 4254 6.9 names; anything else in a `signal` request is ignored.
const SIGNALS = new Set([
  'ABRT',
  'ALRM',
  'FPE',
  'HUP',
  'ILL',
  'INT',
  'KILL',
  'PIPE',
  'QUIT',
  'SEGV',
  'TERM',
  'USR1',
  'USR2',
]);

type Accept = (() => void) | undefined;
type Reject = RejectConnection | undefined;

function clampSize(n: number, fallback: number): number {
  return Number.isInteger(n) && n > 0 ? Math.min(n, MAX_TERM_SIZE) : fallback;
}

export function handleSession(ctx: ConnContext, accept: AcceptConnection<Session>, reject: RejectConnection): void {
  const release = ctx.acquireChannel();
  if (!release) {
    ctx.log.debug('channel limit reached, session refused');
    return reject();
  }
  const session = accept();
  const sid = crypto.randomUUID();
  const { identity } = ctx;
  const user = identity.osUser;
  const clientEnv = new Map<string, string>();
  let ptyInfo: PseudoTtyInfo | undefined;
  let proc: RunningProcess | undefined;
  let started = false;
  let agentSocket: string | undefined;
  // OpenSSH sends auth-agent-req without wanting a reply, right before exec/shell: the start waits for it.
  let agentPending: Promise<void> | undefined;
  let onResize = (cols: number, rows: number): void => proc?.resize(cols, rows);
  const log = ctx.log.child({ sid });
  const base = { sid, user: identity.user, login: identity.login, conn: ctx.id, remote_addr: ctx.remote.addr };

  ctx.onClose(() => proc?.terminate());
  let closed = false;
  session.on('close', () => {
    closed = true;
    proc?.terminate();
    release();
  });
  session.on('error', (err: Error) => log.debug({ err: err.message }, 'session error'));

  session.on('pty', (acc: Accept, rej: Reject, info: PseudoTtyInfo) => {
    if (started || !identity.permitPty) {
      if (!identity.permitPty) log.info('pty refused: not permitted');
      return rej?.();
    }
    ptyInfo = { ...info, cols: clampSize(info.cols, 80), rows: clampSize(info.rows, 24) };
    acc?.();
  });
  session.on('window-change', (acc: Accept, rej: Reject, info: { cols: number; rows: number }) => {
    if (!ptyInfo) return rej?.();
    ptyInfo.cols = clampSize(info.cols, ptyInfo.cols);
    ptyInfo.rows = clampSize(info.rows, ptyInfo.rows);
    onResize(ptyInfo.cols, ptyInfo.rows);
    acc?.();
  });
  session.on('env', (acc: Accept, rej: Reject, info: { key: string; val: string }) => {
    const ok =
      !started &&
      typeof info.key === 'string' &&
      typeof info.val === 'string' &&
      ENV_ALLOWED.test(info.key) &&
      info.val.length <= MAX_ENV_VALUE &&
      !info.val.includes('\0') &&
      (clientEnv.has(info.key) || clientEnv.size < MAX_ENV_VARS);
    if (!ok) {
      log.debug({ name: String(info.key).slice(0, 64) }, 'env refused');
      return rej?.();
    }
    clientEnv.set(info.key, info.val);
    acc?.();
  });
  session.on('signal', (acc: Accept, rej: Reject, info: { name: string }) => {
    if (!proc || !SIGNALS.has(info.name)) return rej?.();
    proc.signal(`SIG${info.name}` as NodeJS.Signals);
    acc?.();
  });
  let outputClosed = false;
  session.on('auth-agent', (acc: Accept, rej: Reject) => {
    if (started || !identity.permitAgentForwarding) {
      ctx.emit('agent', { ...base, success: false, reason: 'agent forwarding not permitted' });
      return rej?.();
    }
    agentPending = agentForwarder(ctx).then(
      (path) => {
        agentSocket = path;
        ctx.emit('agent', { ...base, success: true });
        acc?.();
      },
      (err: unknown) => {
        log.debug({ err }, 'agent forwarding failed');
        rej?.();
      },
    );
  });

  session.on('shell', (acc: AcceptConnection<ServerChannel>, rej: Reject) => {
    start(acc, rej, 'shell', undefined);
  });
  session.on('exec', (acc: AcceptConnection<ServerChannel>, rej: Reject, info: { command: string }) => {
    if (typeof info.command !== 'string' || info.command.length > MAX_COMMAND || info.command.includes('\0'))
      return rej?.();
    start(acc, rej, 'exec', info.command);
  });
  session.on('subsystem', (acc: AcceptConnection<ServerChannel>, rej: Reject, info: { name: string }) => {
    if (info.name !== 'sftp') return rej?.();
    start(acc, rej, 'subsystem', undefined);
  });

  function start(
    acc: AcceptConnection<ServerChannel>,
    rej: Reject,
    kind: 'shell' | 'exec' | 'subsystem',
    command: string | undefined,
  ): void {
    if (started) return rej?.();
    // A cert's force-command replaces whatever the client asked for, shell, command or subsystem
    // (PROTOCOL.certkeys; sshd does the same and passes the request on as SSH_ORIGINAL_COMMAND), and a request
    // to join a live session is one of those: it runs the forced command too.
    const forced = identity.cert.criticalOptions['force-command'];
    const joinSid = kind === 'shell' && forced === undefined ? clientEnv.get('WARD_JOIN_SESSION') : undefined;
    if (joinSid !== undefined) return join(acc, rej, joinSid);
    let argv: [string, string[]];
    if (forced !== undefined) argv = [user.shell, ['-c', forced]];
    else if (kind === 'subsystem') {
      const sftp = sftpServerPath();
      if (!sftp) {
        log.warn('no sftp-server binary on this node');
        return rej?.();
      }
      argv = [sftp, []];
    } else if (kind === 'exec') argv = [user.shell, ['-c', command!]];
    else argv = [user.shell, ['-l']]; // -l: a login shell reads /etc/profile and ~/.profile, as under sshd
    let file: string;
    let args: string[];
    try {
      [file, args] = commandAs(user, argv[0], argv[1]);
    } catch (err) {
      log.warn({ err }, 'cannot switch to the login');
      return rej?.();
    }
    const startedAt = new Date();
    const usePty = ptyInfo !== undefined && kind !== 'subsystem';
    // Fail closed: an interactive session that cannot be recorded, or any session that cannot be
    // audited, does not start.
    const live = usePty ? openLiveSession(startedAt) : undefined;
    if (live === 'refused') return rej?.();
    const abandon = (): void => {
      if (!live) return;
      ctx.sessions?.registry.remove(sid);
      live.recorder?.discard();
    };
    if (!ctx.emit('session.start', { ...base, kind, pty: usePty, ...(kind === 'exec' ? { command } : {}) })) {
      abandon();
      return rej?.();
    }
    const hooks = ctx.sessions;
    started = true;
    const channel = acc();
    if (!channel) return abandon();
    // eow@openssh.com (OpenSSH PROTOCOL 2.1, surfaced by the ssh2 patch): the client takes no more output,
    // so the program's output is closed, as sshd does.
    channel.on('eow', () => {
      outputClosed = true;
      proc?.closeOutput();
    });
    const cwd = homeOrRoot(user.home);
    if (kind === 'exec') {
      const scp = scpTransfer(command!);
      if (scp) ctx.emit('scp', { ...base, ...scp });
    }
    if (kind === 'subsystem') ctx.emit('subsystem', { ...base, name: 'sftp' });
    log.info({ kind, pty: usePty }, 'session started');
    const owner: Participant = { id: ctx.id, user: identity.user, mode: 'peer', joined: startedAt, channel };
    const onExit = (result: ExitResult): void => {
      const ended = new Date();
      const bytes = live ? { bytes_out: live.bytesOut, bytes_in: live.bytesIn } : {};
      const participants = live ? [...live.everyone] : [identity.user];
      // exec is reported when the command is done, with how it ended (its start is in session.start).
      if (kind === 'exec') ctx.emit('exec', { ...base, command, exit_code: result.code, signal: result.signal });
      ctx.emit('session.end', {
        ...base,
        kind,
        exit_code: result.code,
        signal: result.signal,
        duration_ms: ended.getTime() - startedAt.getTime(),
        participants,
        ...bytes,
      });
      log.info({ exit_code: result.code, signal: result.signal }, 'session ended');
      if (live && hooks) {
        live.recorder?.close(ended);
        live.end((ch) => reportExit(ch, result, false), owner.id);
        hooks.registry.remove(sid);
        hooks.onChange(live, true);
      }
      reportExit(channel, result, outputClosed);
    };
    channel.on('error', (err: Error) => log.debug({ err: err.message }, 'channel error'));
    // A lock ends the connection: tell this session why first (a terminal shows it; a command gets it on stderr).
    const notice = (message: string): void => {
      if (usePty) channel.write(`\r\n${message}\r\n`);
      else channel.stderr.write(`${message}\n`);
    };
    ctx.notices.add(notice);
    channel.once('close', () => ctx.notices.delete(notice));
    void (agentPending ?? Promise.resolve()).then(() => {
      if (closed) return onExit({ code: null, signal: 'HUP' });
      const env = sessionEnv(
        forced !== undefined ? (command ?? (kind === 'subsystem' ? 'sftp' : undefined)) : undefined,
      );
      if (usePty) {
        const pty = spawnPty({
          file,
          args,
          env,
          cwd,
          log,
          onExit,
          user,
          term: ptyInfo!.term,
          cols: ptyInfo!.cols,
          rows: ptyInfo!.rows,
          onData: live ? (data) => live.output(data) : (data) => writeOrPause(channel, data, () => pty),
        });
        proc = pty;
        if (live && hooks) {
          live.attachProcess(pty);
          live.join(owner);
          onResize = (cols, rows) => live.resize(cols, rows);
          channel.on('data', (data: Buffer) => live.input(owner, data));
        } else channel.on('data', (data: Buffer) => pty.write(data));
      } else {
        proc = spawnPiped({ file, args, env, cwd, channel, log, onExit });
        if (kind === 'subsystem' && forced === undefined) {
          const reader = new SftpRequestReader((a) => ctx.emit('sftp', { ...base, ...a }));
          channel.on('data', (data: Buffer) => reader.write(data));
        }
      }
    });
  }

  /** The recorded, joinable side of an interactive session; 'refused' if it cannot be recorded. */
  function openLiveSession(startedAt: Date): LiveSession | 'refused' | undefined {
    const hooks = ctx.sessions;
    if (!hooks) return undefined;
    try {
      const recorder = SessionRecorder.open(
        hooks.spoolDir,
        {
          sid,
          server_id: hooks.serverId,
          hostname: hooks.hostname,
          user: identity.user,
          login: identity.login,
          started: startedAt.toISOString(),
          participants: [],
        },
        { cols: ptyInfo!.cols, rows: ptyInfo!.rows, term: ptyInfo!.term },
        (err) => {
          log.error({ err: err.message }, 'session recording failed: ending the session');
          ctx.emit('session.recording_failed', { ...base, error: err.message });
          proc?.terminate();
        },
      );
      const live = new LiveSession(sid, identity.user, identity.login, startedAt, recorder, (s) =>
        hooks.onChange(s, false),
      );
      // Registered from the first byte of its recording: the uploader takes an unregistered recording
      // for one a crash left behind.
      hooks.registry.add(live);
      return live;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cannot record the session: refused');
      ctx.emit('session.recording_failed', { ...base, error: (err as Error).message });
      return 'refused';
    }
  }

  /** `wsh join`: attach this channel to a live session on this node instead of starting a program. */
  function join(acc: AcceptConnection<ServerChannel>, rej: Reject, joinSid: string): void {
    const hooks = ctx.sessions;
    const live = hooks?.registry.get(joinSid);
    const mode: JoinMode = clientEnv.get('WARD_JOIN_MODE') === 'peer' ? 'peer' : 'observer';
    const allowed = !!live && !!hooks && hooks.canJoin(identity, live, mode);
    if (!live || !hooks || !allowed) {
      // The same refusal whether the session does not exist or may not be joined: ids are not to be probed.
      log.info({ join: joinSid.slice(0, 64), mode }, 'session join refused');
      ctx.emit('access.denied', { ...base, action: 'session.join', target_sid: joinSid.slice(0, 64), mode });
      started = true;
      const channel = acc();
      if (!channel) return;
      channel.stderr.write(`ward: no live session ${joinSid.slice(0, 64)} that you may join here\r\n`);
      channel.exit(1);
      channel.end();
      return;
    }
    if (!ctx.emit('session.join', { ...base, sid: live.sid, joiner_sid: sid, mode })) return rej?.();
    started = true;
    const channel = acc();
    if (!channel) return;
    const me: Participant = { id: `${ctx.id}/${sid}`, user: identity.user, mode, joined: new Date(), channel };
    channel.on('error', (err: Error) => log.debug({ err: err.message }, 'channel error'));
    channel.on('data', (data: Buffer) => live.input(me, data));
    const notice = (message: string): void => void channel.write(`\r\n${message}\r\n`);
    ctx.notices.add(notice);
    channel.on('close', () => {
      ctx.notices.delete(notice);
      live.leave(me.id);
      if (hooks.registry.has(live.sid)) ctx.emit('session.leave', { ...base, sid: live.sid, mode });
    });
    live.join(me);
    log.info({ joined: live.sid, mode }, 'joined a live session');
  }

  function reportExit(channel: ServerChannel, result: ExitResult, afterEow: boolean): void {
    try {
      if (result.signal) channel.exit(result.signal, false, '');
      else channel.exit(result.code ?? 255);
      if (afterEow) {
        // After eow the client has thrown away the output it still held without crediting our window
        // (OpenSSH chan_shutdown_write), so queued output may never be sendable: close without it.
        channel.eof();
        channel.close();
      } else channel.end();
    } catch (err) {
      log.debug({ err }, 'cannot report exit');
    }
  }

  function sessionEnv(originalCommand: string | undefined): Record<string, string> {
    // Never the node's own environment: it may hold the node's secrets.
    const env: Record<string, string> = Object.fromEntries(clientEnv);
    const term = ptyInfo?.term || clientEnv.get('TERM');
    if (term) env.TERM = term;
    else delete env.TERM;
    Object.assign(env, {
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      SHELL: user.shell,
      PATH: defaultPath(user),
      MAIL: `/var/mail/${user.name}`,
      SSH_CLIENT: `${ctx.remote.addr} ${ctx.remote.port} ${ctx.local.port}`,
      SSH_CONNECTION: `${ctx.remote.addr} ${ctx.remote.port} ${ctx.local.addr} ${ctx.local.port}`,
      WARD_USER: identity.user,
      WARD_SESSION_ID: sid,
    });
    if (agentSocket) env.SSH_AUTH_SOCK = agentSocket;
    if (originalCommand !== undefined) env.SSH_ORIGINAL_COMMAND = originalCommand;
    return env;
  }
}

/** sshd starts in `/` when the home directory is missing, rather than refusing the login. */
function homeOrRoot(home: string): string {
  try {
    return fs.statSync(home).isDirectory() ? home : '/';
  } catch {
    return '/';
  }
}
