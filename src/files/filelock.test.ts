// The one-process lock for data dirs and SQLite files: held against other processes, and gone with its holder
// however the holder ends (a SIGKILL leaves nothing to clean up).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConnectionProblem } from '../api/errors.ts';
import { holdExclusiveLock } from './filelock.ts';

const dir = mkdtempSync(join(tmpdir(), 'ward-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Another process that takes the lock, says so, and then sleeps until killed. */
async function holdInChild(path: string) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `
    const { holdExclusiveLock } = await import(${JSON.stringify(new URL('./filelock.ts', import.meta.url).href)});
    holdExclusiveLock(${JSON.stringify(path)}, 'busy');
    console.log('held');
    setInterval(() => undefined, 1000);
  `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [first] = (await once(child.stdout, 'data')) as [Buffer];
  assert.equal(first.toString().trim(), 'held');
  return child;
}

describe('exclusive file lock', () => {
  it('refuses a second holder in this process until the first releases', () => {
    const path = join(dir, 'a.lock');
    const lock = holdExclusiveLock(path, 'a is busy');
    assert.throws(
      () => holdExclusiveLock(path, 'a is busy'),
      (err: Error) => err instanceof ConnectionProblem && err.message === 'a is busy',
    );
    lock.release();
    holdExclusiveLock(path, 'a is busy').release();
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('a.')),
      ['a.lock'],
      'no journal or other file beside it',
    );
  });

  it('refuses while another process holds it, and is free once that process is killed', async () => {
    const path = join(dir, 'b.lock');
    const child = await holdInChild(path);
    try {
      assert.throws(() => holdExclusiveLock(path, 'b is busy'), /b is busy/);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    holdExclusiveLock(path, 'b is busy').release();
  });
});
