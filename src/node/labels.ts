// Dynamic labels (as Teleport's `commands`): a label whose value is a command's trimmed output, run
// again every period. A command that fails or hangs (10 s bound) gives the value "error".
import { execFile } from 'node:child_process';
import { parseDuration } from '../time/duration.ts';

export interface LabelCommand {
  name: string;
  command: string[];
  period: string;
}

const MAX_OUTPUT = 1024;

export function startDynamicLabels(
  commands: LabelCommand[],
  onChange: () => void,
): { values: Record<string, string>; stop(): void } {
  const values: Record<string, string> = {};
  const timers: NodeJS.Timeout[] = [];
  for (const c of commands) {
    const run = () =>
      execFile(c.command[0]!, c.command.slice(1), { timeout: 10_000, maxBuffer: 64 * 1024 }, (err, stdout) => {
        const value = err ? 'error' : stdout.trim().slice(0, MAX_OUTPUT);
        if (values[c.name] !== value) {
          values[c.name] = value;
          onChange();
        }
      });
    run();
    const timer = setInterval(run, parseDuration(c.period));
    timer.unref();
    timers.push(timer);
  }
  return { values, stop: () => timers.forEach(clearInterval) };
}
