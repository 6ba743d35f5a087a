// The recording player: xterm.js fed from the asciicast at the chosen speed; seeking replays the
// output up to that point into a cleared terminal (fast: no delays), then play goes on from there.
import { useEffect, useRef, useState } from 'react';
import { Terminal } from '@xterm/xterm';
import { parseCast } from '../../../src/api/asciicast.ts';
import { buildTimeline, formatClock, indexAt, replay, type Timeline } from '../lib/cast.ts';
import { api } from '../api.ts';
import { navigate } from '../router.ts';
import { terminalTheme, type Theme } from '../theme.ts';

const SPEEDS = [0.5, 1, 2, 4, 8];

export function Player({ sid, theme }: { sid: string; theme: Theme }) {
  const box = useRef<HTMLDivElement>(null);
  const term = useRef<Terminal | undefined>(undefined);
  const [tl, setTL] = useState<Timeline | undefined>();
  const [error, setError] = useState('');
  const [pos, setPos] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  const played = useRef(0); // events written to the terminal

  useEffect(() => {
    api<{ cast: string }>('GET', `/webapi/recordings/${sid}`).then(
      (r) => {
        try {
          setTL(buildTimeline(parseCast(r.cast)));
          setPlaying(true);
        } catch (err) {
          setError((err as Error).message);
        }
      },
      (err: Error) => setError(err.message),
    );
  }, [sid]);

  useEffect(() => {
    if (!tl || !box.current) return;
    const t = new Terminal({
      cols: tl.header.width,
      rows: tl.header.height,
      theme: terminalTheme(theme),
      disableStdin: true,
      fontSize: 14,
    });
    t.open(box.current);
    term.current = t;
    return () => t.dispose();
  }, [tl, theme]);

  /** Brings the terminal to position `to`, writing only what is new (or everything after a seek back). */
  const show = (timeline: Timeline, to: number) => {
    const t = term.current;
    if (!t) return;
    const target = indexAt(timeline, to);
    let from = played.current;
    if (target < from) {
      t.reset();
      from = 0;
    }
    const { output, size } = replay(timeline, from, target);
    if (size) t.resize(size.cols, size.rows);
    if (output) t.write(output);
    played.current = target;
  };

  useEffect(() => {
    if (!tl || !playing) return;
    let last = performance.now();
    let at = pos;
    const timer = setInterval(() => {
      const now = performance.now();
      at = Math.min(tl.duration, at + ((now - last) / 1000) * speed);
      last = now;
      show(tl, at);
      setPos(at);
      if (at >= tl.duration) setPlaying(false);
    }, 40);
    return () => clearInterval(timer);
    // pos is the start of this run; re-running on every tick would restart the clock
  }, [tl, playing, speed]);

  const seek = (to: number) => {
    if (!tl) return;
    show(tl, to);
    setPos(to);
  };

  return (
    <section>
      <div className="titlebar">
        <a
          href="/web/recordings"
          onClick={(e) => {
            e.preventDefault();
            navigate('/web/recordings');
          }}
        >
          ← Recordings
        </a>
        <h1 className="mono small">{sid}</h1>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {tl && (
        <div className="player card">
          <div className="player-screen" ref={box} data-testid="player" />
          <div className="controls">
            <button
              onClick={() => {
                if (pos >= tl.duration) seek(0);
                setPlaying(!playing);
              }}
              aria-label={playing ? 'Pause' : 'Play'}
            >
              {playing ? '❚❚ Pause' : '▶ Play'}
            </button>
            <input
              type="range"
              min={0}
              max={tl.duration || 0.001}
              step={0.01}
              value={pos}
              onChange={(e) => seek(Number(e.target.value))}
              aria-label="Timeline"
              className="timeline"
            />
            <span className="mono small" data-testid="clock">
              {formatClock(pos)} / {formatClock(tl.duration)}
            </span>
            <select value={speed} onChange={(e) => setSpeed(Number(e.target.value))} aria-label="Speed">
              {SPEEDS.map((s) => (
                <option key={s} value={s}>
                  {s}×
                </option>
              ))}
            </select>
          </div>
        </div>
      )}
    </section>
  );
}
