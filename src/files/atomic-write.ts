// Files holding keys and certificates are written whole or not at all (tmp + fsync + rename), and
// private ones are created 0600, never world-readable even for an instant.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * `durable: false` skips the fsync: the file still appears whole or not at all to readers and survives
 * the process being killed, but not a power cut. For files rewritten often on a hot path.
 */
export function writeFileAtomic(
  path: string,
  data: string | Buffer,
  mode = 0o600,
  opts: { durable?: boolean } = {},
): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    if (opts.durable !== false) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
