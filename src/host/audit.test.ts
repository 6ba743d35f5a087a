import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { systemClock } from '../time/clock.ts';
import type { AuthClient } from '../api/client.ts';
import { AuditForwarder } from './audit.ts';

const root = mkdtempSync(join(tmpdir(), 'ward-spool-'));
after(() => rmSync(root, { recursive: true, force: true }));
const log = pino({ level: 'silent' });
// emit() never calls the auth server: spooling is local. (Sending is tested end to end in test/recording.test.ts.)
const unreachable = {} as AuthClient;

describe('audit spool', () => {
  it('writes each event to disk before emit returns, with its own uid and time', async () => {
    const dir = join(root, 'a');
    const fwd = new AuditForwarder(unreachable, dir, systemClock, log);
    fwd.emit('exec', { user: 'alice', command: 'true' });
    const files = readdirSync(dir);
    assert.equal(files.length, 1);
    const event = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8'));
    assert.equal(event.event, 'exec');
    assert.match(event.uid, /^[0-9a-f-]{36}$/);
    assert.ok(Math.abs(Date.parse(event.time) - Date.now()) < 5000);
    await fwd.close().catch(() => {});
  });

  it('throws when the event cannot be written, so the access that needed it is refused', () => {
    const dir = join(root, 'b');
    const fwd = new AuditForwarder(unreachable, dir, systemClock, log);
    // The spool directory is replaced by a file: every write fails, as on a broken disk.
    rmSync(dir, { recursive: true });
    writeFileSync(dir, '');
    assert.throws(() => fwd.emit('session.start', { user: 'alice' }), /ENOTDIR/);
    assert.equal(fwd.stats.writeFailures, 1);
  });
});
