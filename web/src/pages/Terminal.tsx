// The browser terminal: xterm.js on a WebSocket to the proxy, which runs the SSH session to the node.
import { useEffect, useRef, useState } from 'react';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { csrfToken, type Me } from '../api.ts';
import { terminalTheme, type Theme } from '../theme.ts';

export function TerminalPage({ me, url, theme }: { me: Me; url: URL; theme: Theme }) {
  const box = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting…');
  const [ended, setEnded] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const node = url.searchParams.get('node') ?? '';
  const login = url.searchParams.get('login') ?? '';
  const host = url.searchParams.get('host') || node;
  const join = url.searchParams.get('join');
  const mode = url.searchParams.get('mode') === 'peer' ? 'peer' : 'observer';
  const title = `${login}@${host}${join ? ` (joined as ${mode})` : ''}`;

  useEffect(() => {
    document.title = `${title} · Ward`;
    const term = new Terminal({
      cursorBlink: true,
      fontSize: 14,
      theme: terminalTheme(theme),
      scrollback: 5000,
      convertEol: false,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box.current!);
    fit.fit();
    const q = new URLSearchParams({ node, login, cols: String(term.cols), rows: String(term.rows), csrf: csrfToken() });
    if (join) {
      q.set('join', join);
      q.set('mode', mode);
    }
    const ws = new WebSocket(`wss://${location.host}/webapi/terminal?${q}`);
    ws.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    ws.onopen = () => setStatus('connected');
    ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (typeof e.data !== 'string') return term.write(new Uint8Array(e.data));
      const msg = JSON.parse(e.data) as { type: string; message?: string; code?: number | null };
      if (msg.type === 'exit') setStatus(`session ended (exit status ${msg.code ?? '?'})`);
      if (msg.type === 'error') {
        setStatus(msg.message ?? 'error');
        term.write(`\r\n\x1b[31m${msg.message ?? 'error'}\x1b[0m\r\n`);
      }
    };
    ws.onclose = () => {
      setEnded(true);
      setStatus((s) => (s === 'connected' || s === 'connecting…' ? 'disconnected' : s));
    };
    const input = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(encoder.encode(d)));
    const resized = term.onResize(
      ({ cols, rows }) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'resize', cols, rows })),
    );
    const onWindow = () => fit.fit();
    addEventListener('resize', onWindow);
    term.focus();
    return () => {
      removeEventListener('resize', onWindow);
      input.dispose();
      resized.dispose();
      ws.close();
      term.dispose();
    };
    // A theme switch does not reconnect: the next terminal opened picks it up.
  }, [node, login, join, mode, attempt]);

  return (
    <div className="terminal-page">
      <header className="topbar">
        <span className="brand">Ward</span>
        <span className="mono">{title}</span>
        <span className="spacer" />
        <span className={`status ${ended ? 'off' : 'on'}`} data-testid="terminal-status">
          {status}
        </span>
        {ended && (
          <button
            onClick={() => {
              setEnded(false);
              setStatus('connecting…');
              setAttempt((a) => a + 1);
            }}
          >
            Reconnect
          </button>
        )}
        <span className="who">{me.user}</span>
      </header>
      <div className="term-box" ref={box} data-testid="terminal" />
    </div>
  );
}
