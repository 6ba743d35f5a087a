// One SSH "session" channel on a node (RFC 4254 6): collects pty-req and env, then runs the shell, the
// command or the sftp subsystem as the login's OS user, relays window changes, signals and EOF, and
// reports exit-status / exit-signal. Audit: session.start, exec, subsystem, session.end.
import fs from 'node:fs';
import crypto from 'node:crypto';
import type { AcceptConnection, PseudoTtyInfo, RejectConnection, ServerChannel, Session } from 'ssh2';
import type { ConnContext } from './server.ts';
import { commandAs, defaultPath } from './osuser.ts';
import { spawnPiped, spawnPty, type ExitResult, type RunningProcess } from './process.ts';
import { sftpServerPath } from './sftp.ts';
import { agentForwarder } from './agent.ts';

// Client `env` requests sshd would take with "AcceptEnv LANG LC_* TERM WARD_*"; anything else is dropped.
const ENV_ALLOWED = /^(LANG|LC_[A-Z_]+|TERM|WARD_[A-Z0-9_]+)$/;
const MAX_ENV_VARS = 64;
const MAX_ENV_VALUE = 4096;
const MAX_COMMAND = 64 * 1024;
const MAX_TERM_SIZE = 4096;
// The signals RFC 4254 6.9 names; anything else in a `signal` request is ignored.
const SIGNALS = new Set(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']);

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
    proc?.resize(ptyInfo.cols, ptyInfo.rows);
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
  session.on('eow', () => {
    outputClosed = true;
    proc?.closeOutput();
  });
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
    if (typeof info.command !== 'string' || info.command.length > MAX_COMMAND || info.command.includes('\0')) return rej?.();
    start(acc, rej, 'exec', info.command);
  });
  session.on('subsystem', (acc: AcceptConnection<ServerChannel>, rej: Reject, info: { name: string }) => {
    if (info.name !== 'sftp') return rej?.();
    start(acc, rej, 'subsystem', undefined);
  });

  function start(acc: AcceptConnection<ServerChannel>, rej: Reject, kind: 'shell' | 'exec' | 'subsystem', command: string | undefined): void {
    if (started) return rej?.();
    // A cert's force-command replaces whatever the client asked for, shell, command or subsystem
    // (PROTOCOL.certkeys; sshd does the same and passes the request on as SSH_ORIGINAL_COMMAND).
    const forced = identity.cert.criticalOptions['force-command'];
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
    started = true;
    const channel = acc();
    if (!channel) return;
    const cwd = homeOrRoot(user.home);
    const startedAt = Date.now();
    const usePty = ptyInfo !== undefined && kind !== 'subsystem';
    ctx.emit('session.start', { ...base, kind, pty: usePty });
    if (kind === 'exec') ctx.emit('exec', { ...base, command });
    if (kind === 'subsystem') ctx.emit('subsystem', { ...base, name: 'sftp' });
    log.info({ kind, pty: usePty }, 'session started');
    const onExit = (result: ExitResult): void => {
      ctx.emit('session.end', { ...base, kind, exit_code: result.code, signal: result.signal, duration_ms: Date.now() - startedAt });
      log.info({ exit_code: result.code, signal: result.signal }, 'session ended');
      try {
        if (result.signal) channel.exit(result.signal, false, '');
        else channel.exit(result.code ?? 255);
        if (outputClosed) {
          // After eow the client has thrown away the output it still held without crediting our window
          // (OpenSSH chan_shutdown_write), so queued output may never be sendable: close without it.
          channel.eof();
          channel.close();
        } else channel.end();
      } catch (err) {
        log.debug({ err }, 'cannot report exit');
      }
    };
    channel.on('error', (err: Error) => log.debug({ err: err.message }, 'channel error'));
    void (agentPending ?? Promise.resolve()).then(() => {
      if (closed) return;
      const env = sessionEnv(forced !== undefined ? (command ?? (kind === 'subsystem' ? 'sftp' : undefined)) : undefined);
      if (usePty) {
        proc = spawnPty({ file, args, env, cwd, channel, log, onExit, user, term: ptyInfo!.term, cols: ptyInfo!.cols, rows: ptyInfo!.rows });
      } else {
        proc = spawnPiped({ file, args, env, cwd, channel, log, onExit });
      }
    });
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
