// bin/ runs a prebuilt bundle only while it is newer than every source file: a stale bundle never runs.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
// @ts-expect-error: plain ESM module without type declarations
import { isFresh } from '../bin/launch.mjs';

const dir = mkdtempSync(join(tmpdir(), 'ward-launch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const at = (path: string, seconds: number) => utimesSync(path, seconds, seconds);
const url = (path: string, isDir = false) => pathToFileURL(path + (isDir ? '/' : ''));

describe('choosing the bundle or the sources', () => {
  mkdirSync(join(dir, 'src/deep'), { recursive: true });
  const source = join(dir, 'src/deep/file.ts');
  const bundle = join(dir, 'main.mjs');
  writeFileSync(source, '');

  it('runs the sources when there is no bundle', () => {
    assert.equal(isFresh(url(bundle), url(join(dir, 'src'), true)), false);
  });
  it('runs the bundle when it is newer than every source file', () => {
    writeFileSync(bundle, '');
    at(source, 1_000);
    at(bundle, 2_000);
    assert.equal(isFresh(url(bundle), url(join(dir, 'src'), true)), true);
  });
  it('runs the sources once any source file, however deep, is edited after the build', () => {
    at(source, 3_000);
    assert.equal(isFresh(url(bundle), url(join(dir, 'src'), true)), false);
  });
});
