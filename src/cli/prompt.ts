// Questions asked on the terminal: yes/no, and secrets read without echo.
import { createInterface } from 'node:readline';
import { BadParameter } from '../api/errors.ts';

export function isInteractive(): boolean {
  return !!process.stdin.isTTY && !!process.stderr.isTTY;
}

export async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await new Promise<string>((resolve) => rl.question(`${question} [y/N] `, resolve));
  rl.close();
  return /^y(es)?$/i.test(answer.trim());
}

/** Reads a line from the terminal without echoing it. */
export async function readSecret(prompt: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new BadParameter(`${prompt.replace(/:\s*$/, '')} needed: run in a terminal or use --password-stdin`);
  process.stderr.write(prompt);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  let secret = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            return resolve(secret);
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            return reject(new BadParameter('cancelled'));
          }
          if (ch === '\u007f' || ch === '\b') secret = secret.slice(0, -1);
          else if (secret.length < 1024) secret += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

export function readStdinLine(what: string, data: string): string {
  const line = data.split(/\r?\n/)[0] ?? '';
  if (!line) throw new BadParameter(`no ${what} on standard input`);
  return line;
}
