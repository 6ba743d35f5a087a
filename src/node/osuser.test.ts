// Account lookup: the passwd file is read directly only when NSS reads it first, what is read there agrees with
// getpwnam, and odd or malformed entries are refused rather than guessed at.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { AccessDenied } from '../api/errors.ts';
import { findInPasswd, lookupUser, nsswitchFilesFirst, parsePasswdLine } from './osuser.ts';

describe('OS account lookup', () => {
  it('reads the passwd file first only when nsswitch.conf puts `files` first for passwd', () => {
    assert.equal(nsswitchFilesFirst('passwd:         files systemd\ngroup: files\n'), true);
    assert.equal(nsswitchFilesFirst('# passwd: files\npasswd: sss files\n'), false, 'LDAP/SSSD first');
    assert.equal(nsswitchFilesFirst('passwd: compat\n'), false, 'compat has +/- semantics of its own');
    assert.equal(nsswitchFilesFirst('group: files\n'), false, 'no passwd line: ask getent');
    assert.equal(nsswitchFilesFirst('passwd: files # local first\n'), true);
    assert.equal(nsswitchFilesFirst('passwd:files\n'), true);
  });

  it('finds the exact account in a passwd file and nothing else', () => {
    const text = [
      '+alice::::::',
      'al:x:1000:1000::/home/al:/bin/sh',
      'alice:x:1001:1002:Alice:/home/alice:/bin/bash',
      '',
    ].join('\n');
    assert.deepEqual(findInPasswd(text, 'alice'), {
      name: 'alice',
      uid: 1001,
      gid: 1002,
      home: '/home/alice',
      shell: '/bin/bash',
    });
    assert.equal(findInPasswd(text, 'ali'), undefined, 'a prefix of a name is not the name');
    assert.equal(findInPasswd(text, 'bob'), undefined);
    assert.equal(findInPasswd(text, 'x'), undefined, 'a password field is not a name');
    assert.equal(
      findInPasswd('al:x:1000:1000::/home/al:/bin/sh', 'al')?.uid,
      1000,
      'first line, no newline at the end',
    );
    assert.equal(
      findInPasswd('root:x:0:0::/root:/bin/sh\nal:x:7:7::/:/bin/sh', 'al')?.uid,
      7,
      'last line, no newline at the end',
    );
    assert.equal(
      findInPasswd('al:x:1:1::/:/bin/sh\nal:x:2:2::/:/bin/sh\n', 'al')?.uid,
      1,
      'the first entry wins, as in glibc',
    );
  });

  it('refuses malformed entries instead of guessing (an empty uid is not root)', () => {
    for (const line of [
      'alice:x::1000::/h:/bin/sh',
      'alice:x:-1:1000::/h:/bin/sh',
      'alice:x:1e3:1000::/h:/bin/sh',
      'alice:x:1000:1000:/h:/bin/sh',
      'bob:x:1:1::/h:/bin/sh',
    ]) {
      assert.throws(() => parsePasswdLine('alice', line), AccessDenied, line);
    }
    assert.deepEqual(
      parsePasswdLine('alice', 'alice:x:0:0:::'),
      { name: 'alice', uid: 0, gid: 0, home: '/', shell: '/bin/sh' },
      'empty home and shell take the defaults',
    );
  });

  it('agrees with getent for a real account and refuses unknown or odd logins', async () => {
    const f = execFileSync('getent', ['passwd', 'root'], { encoding: 'utf8' }).trim().split(':');
    assert.deepEqual(await lookupUser('root'), {
      name: 'root',
      uid: Number(f[2]),
      gid: Number(f[3]),
      home: f[5],
      shell: f[6],
    });
    await assert.rejects(lookupUser('no-such-user-ward'), AccessDenied);
    await assert.rejects(lookupUser('root:x'), AccessDenied);
    await assert.rejects(lookupUser('../root'), AccessDenied);
  });
});
