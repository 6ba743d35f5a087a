// The browser terminal: a WebSocket from the web UI to this proxy, which opens an SSH session to the
// node on the user's behalf, with the web session's own SSH certificate, through the same Router as
// `ssh -J` and `wsh proxy ssh` (so the proxy's checks are the same), and the node checks the
// certificate and records the session as it does for any PTY session.
//
// Frames: browser → proxy, binary = keystrokes, text = JSON control ({"type":"resize","cols","rows"});
// proxy → browser, binary = terminal output, text = JSON status ({"type":"exit"|"error", …}).
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { NotSignedIn } from '../api/errors.ts';
import { hostCertVerifier } from '../crypto/hosttrust.ts';
import { parseAuthorizedKey } from '../crypto/sshkeys.ts';
import type { Router } from './router.ts';
import { bearerFromCookie, checkCSRF, type ActiveWebSession, type WebSessions } from './websession.ts';

export const TERMINAL_PATH = '/webapi/terminal';
/** A keystroke or paste frame larger than this closes the socket (1009) before its payload is read. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Output waiting for a slow browser: past this the SSH channel is paused until the socket drains. */
const MAX_BUFFERED_OUTPUT = 1024 * 1024;
const SSH_TIMEOUT_MS = 20_000;
const MAX_TERM = 1000;

export interface TerminalRequest {
  node: string;
  login: string;
  cols: number;
  rows: number;
  join?: { sid: string; mode: 'observer' | 'peer' };
}

/** Reads and bounds the query of a terminal URL (pure). */
export function parseTerminalQuery(q: URLSearchParams): TerminalRequest | string {
  const node = q.get('node') ?? '';
  const login = q.get('login') ?? '';
  const cols = Number(q.get('cols') ?? 80);
  const rows = Number(q.get('rows') ?? 24);
  if (!/^[A-Za-z0-9._@-]{1,256}$/.test(node)) return 'missing or invalid node';
  if (!/^[A-Za-z0-9._@-]{1,256}$/.test(login)) return 'missing or invalid login';
  if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1 || cols > MAX_TERM || rows > MAX_TERM)
    return 'invalid terminal size';
  const sid = q.get('join');
  if (!sid) return { node, login, cols, rows };
  if (!/^[0-9a-f-]{36}$/.test(sid)) return 'invalid session id';
  const mode = q.get('mode') === 'peer' ? 'peer' : 'observer';
  return { node, login, cols, rows, join: { sid, mode } };
}

/** A control frame from the browser (pure): only resizes exist. */
export function parseControl(text: string): { cols: number; rows: number } | undefined {
  try {
    const v = JSON.parse(text) as { type?: unknown; cols?: unknown; rows?: unknown };
    if (v.type !== 'resize' || !Number.isInteger(v.cols) || !Number.isInteger(v.rows)) return undefined;
    const cols = v.cols as number;
    const rows = v.rows as number;
    return cols >= 1 && rows >= 1 && cols <= MAX_TERM && rows <= MAX_TERM ? { cols, rows } : undefined;
  } catch {
    return undefined;
  }
}

function connectSSH(sock: Duplex, session: ActiveWebSession, req: TerminalRequest): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.once('ready', () => resolve(client));
    client.once('error', (err: Error & { level?: string }) =>
      reject(err.level === 'client-authentication' ? new Error(`the node refused login "${req.login}"`) : err),
    );
    client.once('close', () => reject(new Error('the node closed the connection')));
    // Ward's ssh2 patch takes `certificate` and offers the certificate host key types.
    const config = {
      sock,
      username: req.login,
      privateKey: session.sshKey,
      certificate: parseAuthorizedKey(session.sshCert).blob,
      hostVerifier: hostCertVerifier(session.sshHostCAs, req.node),
      algorithms: { serverHostKey: ['ssh-ed25519-cert-v01@openssh.com', 'ecdsa-sha2-nistp256-cert-v01@openssh.com'] },
      readyTimeout: SSH_TIMEOUT_MS,
    };
    client.connect(config as unknown as ConnectConfig);
  });
}

export function createTerminalServer(opts: { sessions: WebSessions; router: Router; log: Logger }) {
  const { log } = opts;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });

  const refuse = (socket: Duplex, status: number, message: string) => {
    const head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\n`;
    socket.end(`${head}${message}\n`);
  };

  /** The HTTP/1.1 upgrade of a terminal URL: checked in full before the WebSocket is accepted. */
  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    const url = new URL(req.url ?? '/', 'https://proxy.invalid');
    if (url.pathname !== TERMINAL_PATH) return refuse(socket, 400, 'no such WebSocket endpoint');
    // Browsers always send Origin on a WebSocket: one from another site is cross-site WebSocket hijacking.
    const host = String(req.headers.host ?? '');
    if (req.headers.origin !== `https://${host}`) return refuse(socket, 403, 'cross-origin WebSocket refused');
    let session: ActiveWebSession;
    try {
      session = await opts.sessions.authenticate(bearerFromCookie(req.headers.cookie));
      checkCSRF(session.bearer, url.searchParams.get('csrf') ?? undefined);
    } catch (err) {
      // Any failure here (no session, an ended one, a wrong CSRF token) refuses the socket as not signed in.
      const refusal = new NotSignedIn((err as Error).message);
      return refuse(socket, refusal.httpStatus, refusal.message);
    }
    const parsed = parseTerminalQuery(url.searchParams);
    if (typeof parsed === 'string') return refuse(socket, 400, parsed);
    wss.handleUpgrade(req, socket, head, (ws) => void run(ws, session, parsed, req.socket.remoteAddress ?? ''));
  }

  async function run(
    ws: WebSocket,
    session: ActiveWebSession,
    req: TerminalRequest,
    clientAddr: string,
  ): Promise<void> {
    const status = (msg: Record<string, unknown>) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
    };
    let client: ssh2.Client | undefined;
    let closed = false;
    ws.on('error', (err) => log.debug({ err: err.message }, 'terminal websocket error'));
    // Keystrokes typed before the shell is up wait here (bounded by the frame size and this count).
    const early: Buffer[] = [];
    let channel: ssh2.ClientChannel | undefined;
    let pendingResize: { cols: number; rows: number } | undefined;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (!isBinary) {
        const size = parseControl(buf.toString('utf8'));
        if (!size) return;
        if (channel) channel.setWindow(size.rows, size.cols, 0, 0);
        else pendingResize = size;
        return;
      }
      if (channel) {
        if (!channel.write(buf)) {
          ws.pause();
          channel.once('drain', () => ws.resume());
        }
      } else if (early.length < 64) early.push(buf);
    });
    ws.on('close', () => {
      closed = true;
      client?.end();
    });
    const grants = { user: session.user, roles: session.identity.roles, traits: session.identity.traits ?? {} };
    try {
      const sock = await opts.router.dial(grants, req.node, 22, clientAddr);
      if (closed) return void sock.destroy();
      client = await connectSSH(sock, session, req);
      if (closed) return void client.end();
      const env: Record<string, string> = req.join
        ? { WARD_JOIN_SESSION: req.join.sid, WARD_JOIN_MODE: req.join.mode }
        : {};
      channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client!.shell(
          { term: 'xterm-256color', cols: req.cols, rows: req.rows, height: 0, width: 0 },
          { env },
          (err, ch) => (err ? reject(err) : resolve(ch)),
        ),
      );
    } catch (err) {
      log.info(
        { user: session.user, node: req.node, login: req.login, err: (err as Error).message },
        'web terminal refused',
      );
      status({ type: 'error', message: (err as Error).message });
      ws.close(1011, 'session failed');
      client?.end();
      return;
    }
    const ch = channel;
    if (pendingResize) ch.setWindow(pendingResize.rows, pendingResize.cols, 0, 0);
    for (const b of early.splice(0)) ch.write(b);
    const forward = (data: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(data, { binary: true });
      if (ws.bufferedAmount > MAX_BUFFERED_OUTPUT) {
        ch.pause();
        const wait = setInterval(() => {
          if (ws.readyState !== ws.OPEN || ws.bufferedAmount < MAX_BUFFERED_OUTPUT / 4) {
            clearInterval(wait);
            ch.resume();
          }
        }, 20);
      }
    };
    ch.on('data', forward);
    ch.stderr.on('data', forward);
    let exitCode: number | null = null;
    ch.on('exit', (code: number | null) => (exitCode = code));
    client.on('error', (err) => log.debug({ err: err.message }, 'web terminal ssh error'));
    // The channel closes when the program ends (with an exit status) or when the connection to the
    // node breaks (without one): the browser says which.
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      if (exitCode === null) status({ type: 'error', message: 'the connection to the node was lost' });
      else status({ type: 'exit', code: exitCode });
      ws.close(exitCode === null ? 1011 : 1000);
      client?.end();
    };
    ch.once('close', finish);
    client.once('close', finish);
  }

  return {
    handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      void handleUpgrade(req, socket, head).catch((err: Error) => {
        log.warn({ err: err.message }, 'web terminal upgrade failed');
        socket.destroy();
      }),
    close: () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}
