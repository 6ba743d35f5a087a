// An interactive terminal client for tests: a process (OpenSSH `ssh -tt`, `wsh join`) whose output is
// collected and into which the test types, as a user at a keyboard would.
import { type ChildProcess, spawn } from 'node:child_process';
import { poll } from './harness.ts';

const running = new Set<ChildProcess>();

/** An interactive OpenSSH session (`ssh -tt`) that the test types into and reads from. */
export class Terminal {
  output = Buffer.alloc(0);
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(cmd: string, args: string[], env: Record<string, string>) {
    this.child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(this.child);
    this.child.stdout!.on('data', (d: Buffer) => (this.output = Buffer.concat([this.output, d])));
    this.child.stderr!.resume();
    this.exited = new Promise((resolve) => this.child.once('close', (code) => resolve(code)));
    void this.exited.then(() => running.delete(this.child));
  }

  type(text: string): void {
    this.child.stdin!.write(text);
  }

  async waitFor(pattern: RegExp, what = String(pattern)): Promise<void> {
    await poll(
      `${what} on the terminal`,
      async () => (pattern.test(this.output.toString('utf8')) ? true : undefined),
      15_000,
      50,
    );
  }

  async exit(): Promise<number | null> {
    this.type('exit\n');
    this.child.stdin!.end();
    return this.exited;
  }
}

/** Kills every terminal still open (from `after`). */
export function killTerminals(): void {
  for (const child of running) child.kill('SIGKILL');
}
