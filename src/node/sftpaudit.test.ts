import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SftpRequestReader, type SftpAction } from './sftpaudit.ts';

const str = (s: string) => {
  const b = Buffer.from(s);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
/** uint32 length, byte type, uint32 id, payload. */
const packet = (type: number, ...payload: Buffer[]) => {
  const body = Buffer.concat([Buffer.from([type]), u32(7), ...payload]);
  return Buffer.concat([u32(body.length), body]);
};

function read(...chunks: Buffer[]): SftpAction[] {
  const seen: SftpAction[] = [];
  const r = new SftpRequestReader((a) => seen.push(a));
  for (const c of chunks) r.write(c);
  return seen;
}

describe('SFTP request audit', () => {
  const init = Buffer.concat([u32(5), Buffer.from([1]), u32(3)]); // SSH_FXP_INIT, version 3 (no request id)
  const open = packet(3, str('/etc/passwd'), u32(0x1), u32(0));
  const write = packet(3, str('/tmp/up.bin'), u32(0x2 | 0x8 | 0x10), u32(0));
  const data = packet(6, str('handle'), Buffer.alloc(8), str('x'.repeat(100_000))); // SSH_FXP_WRITE: skipped
  const rename = packet(18, str('/tmp/a'), str('/tmp/b'));
  const symlink = packet(20, str('/etc/shadow'), str('/tmp/link')); // OpenSSH order: target, then link
  const posixRename = packet(200, str('posix-rename@openssh.com'), str('/tmp/c'), str('/tmp/d'));
  const stream = Buffer.concat([
    init,
    open,
    data,
    write,
    rename,
    symlink,
    posixRename,
    packet(200, str('statvfs@openssh.com'), str('/')),
    packet(13, str('/tmp/b')),
    packet(11, str('/root')),
  ]);
  const expected: SftpAction[] = [
    { action: 'read', path: '/etc/passwd' },
    { action: 'write', path: '/tmp/up.bin' },
    { action: 'rename', path: '/tmp/a', target: '/tmp/b' },
    { action: 'symlink', path: '/tmp/link', target: '/etc/shadow' },
    { action: 'rename', path: '/tmp/c', target: '/tmp/d' },
    { action: 'remove', path: '/tmp/b' },
    { action: 'list', path: '/root' },
  ];

  it('reports opens, writes, renames, symlinks, removals and listings with their paths', () => {
    assert.deepEqual(read(stream), expected);
  });

  it('gives the same answer however the stream is cut into chunks', () => {
    for (const size of [1, 2, 3, 5, 7, 64, 4096]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      assert.deepEqual(read(...chunks), expected, `chunks of ${size}`);
    }
  });

  it('skips an oversized or truncated request without buffering it', () => {
    const huge = packet(3, str('/x'.repeat(40_000)), u32(1), u32(0));
    assert.deepEqual(read(huge, open), [{ action: 'read', path: '/etc/passwd' }]);
    const cut = packet(13, Buffer.from([0, 0, 0, 50]), Buffer.from('short'));
    assert.deepEqual(read(cut, open), [{ action: 'read', path: '/etc/passwd' }]);
  });
});
