// How every Ward command ends: a typed error is one line on stderr and a non-zero exit; anything else
// is a bug, reported as one line too (set WARD_DEBUG=1 for the stack).
import { CommanderError, type Command } from 'commander';
import { isWardError } from '../api/errors.ts';

export function failLine(err: unknown): string {
  if (isWardError(err)) return `ERROR: ${err.message}`;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNREFUSED')
    return `ERROR: connection refused (${(e as { address?: string }).address ?? 'server'} is not running?)`;
  return `ERROR: ${e?.message ?? String(err)}`;
}

export async function runCLI(program: Command, argv = process.argv): Promise<void> {
  // `wctl get users | head`: a closed pipe ends the command quietly, as it does for cat.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  // Commander copies these settings to a subcommand only when it is created, and the CLIs define
  // theirs first: set them on every command, so `wctl users add` (no --roles) also says ERROR:.
  const configure = (cmd: Command) => {
    cmd.exitOverride();
    cmd.configureOutput({
      outputError: (str, write) => write(str.startsWith('error:') ? `ERROR: ${str.slice(7)}` : str),
    });
    cmd.commands.forEach(configure);
  };
  configure(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (process.env.WARD_DEBUG) console.error(err);
    console.error(failLine(err));
    process.exitCode = 1;
  }
}
