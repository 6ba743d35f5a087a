import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MAX_CHUNK_BYTES, RecordingStore } from './recordings.ts';

const dir = mkdtempSync(join(tmpdir(), 'ward-recstore-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

describe('recording store', () => {
  const store = new RecordingStore(dir);

  it('appends at its current size only, so a resent chunk is written once', () => {
    assert.deepEqual(store.append(sid(1), 'node-a', 0, Buffer.from('hello ')), { size: 6, complete: false });
    assert.deepEqual(
      store.append(sid(1), 'node-a', 0, Buffer.from('hello ')),
      { size: 6, complete: false },
      'a resend changes nothing',
    );
    assert.deepEqual(
      store.append(sid(1), 'node-a', 20, Buffer.from('gap')),
      { size: 6, complete: false },
      'a gap is not written',
    );
    assert.deepEqual(store.append(sid(1), 'node-a', 6, Buffer.from('world')), { size: 11, complete: false });
    assert.deepEqual(store.complete(sid(1), 'node-a'), { size: 11, complete: true });
    assert.equal(store.read(sid(1), 0, 100).data.toString(), 'hello world');
    assert.equal(store.read(sid(1), 6, 3).data.toString(), 'wor');
    assert.deepEqual(
      store.append(sid(1), 'node-a', 11, Buffer.from('more')),
      { size: 11, complete: true },
      'a complete recording is read-only',
    );
  });

  it('keeps a recording to the node that started it', () => {
    store.append(sid(2), 'node-a', 0, Buffer.from('x'));
    assert.throws(() => store.append(sid(2), 'node-b', 1, Buffer.from('y')), /another node/);
    assert.throws(() => store.complete(sid(2), 'node-b'), /no such recording/);
  });

  it('takes only a session id as a name, never a path', () => {
    for (const bad of ['../../etc/passwd', '', 'a/b', `${sid(3)}/../x`, 'ABCDEF00-0000-4000-8000-000000000003']) {
      assert.throws(() => store.append(bad, 'node-a', 0, Buffer.from('x')), /invalid session id/, bad);
      assert.throws(() => store.read(bad, 0, 1), /invalid session id/, bad);
    }
    assert.ok(
      readdirSync(dir).every((f) => /^[0-9a-f-]{36}\.(cast|cast\.part|owner)$/.test(f)),
      readdirSync(dir).join(' '),
    );
  });

  it('bounds a chunk and says when a recording does not exist', () => {
    assert.throws(() => store.append(sid(4), 'node-a', 0, Buffer.alloc(MAX_CHUNK_BYTES + 1)), /at most/);
    assert.throws(() => store.read(sid(5), 0, 1), /not found/);
  });
});
