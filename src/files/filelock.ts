// One process at a time for a file or directory that only one process may own: an auth server's SQLite
// database, a `ward start` data dir (whose host identity two agents would fight over). The hold is SQLite's
// own exclusive lock (POSIX fcntl) on a small file, which the OS drops when the process dies, however it
// dies: no stale pid file to clean up after a crash, and no false "in use" when a pid is reused.
import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ConnectionProblem, type WardError } from '../api/errors.ts';

export interface FileLock {
  release(): void;
}

/**
 * Holds `lockPath` (created 0600 if missing) until release(); while another process holds it, throws `inUse` as
 * a `held` (by default a ConnectionProblem).
 */
export function holdExclusiveLock(
  lockPath: string,
  inUse: string,
  held: new (message: string) => WardError = ConnectionProblem,
): FileLock {
  try {
    closeSync(openSync(lockPath, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const lock = new Database(lockPath, { timeout: 0 });
  try {
    lock.pragma('journal_mode = MEMORY'); // nothing is written: no -journal file beside the lock
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    lock.close();
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') throw new held(inUse);
    throw err;
  }
  return { release: () => lock.close() };
}
