import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Role } from '../api/types.ts';
import { BUILTIN_ROLES } from './builtin.ts';
import { AccessChecker } from './checker.ts';
import { expandTemplates, matchLabels } from './match.ts';

const role = (name: string, spec: Role['spec']): Role => ({ kind: 'role', version: 'v1', metadata: { name }, spec });
const builtin = (name: string) => BUILTIN_ROLES.find((r) => r.metadata.name === name)!;

describe('label matching', () => {
  it('matches exact values, lists, "*" and anchored regexes', () => {
    assert.ok(matchLabels({ env: 'prod' }, { env: 'prod' }));
    assert.ok(matchLabels({ env: ['staging', 'prod'] }, { env: 'prod' }));
    assert.ok(matchLabels({ env: '*' }, { env: 'anything' }));
    assert.ok(matchLabels({ env: '^pr.d$' }, { env: 'prod' }));
    assert.ok(matchLabels({ '*': '*' }, {}));
  });
  it('refuses missing labels, other values, empty selectors and invalid regexes', () => {
    assert.ok(!matchLabels({ env: 'prod' }, {}));
    assert.ok(!matchLabels({ env: 'prod' }, { env: 'staging' }));
    assert.ok(!matchLabels({}, { env: 'prod' }));
    assert.ok(!matchLabels(undefined, { env: 'prod' }));
    assert.ok(!matchLabels({ env: '^(unclosed$' }, { env: 'prod' }));
    assert.ok(!matchLabels({ env: 'pr.d' }, { env: 'prod' }), 'unanchored text is not a regex');
  });
});

describe('trait templates', () => {
  it('expands {{internal.logins}} and drops unknown traits rather than keeping the literal', () => {
    assert.deepEqual(expandTemplates(['{{internal.logins}}', 'ubuntu'], { logins: ['alice', 'ubuntu'] }), [
      'alice',
      'ubuntu',
    ]);
    assert.deepEqual(expandTemplates(['{{internal.nope}}', '{{bad'], {}), []);
  });
});

describe('AccessChecker', () => {
  const dev = role('dev', {
    options: { max_session_ttl: '2h' },
    allow: { logins: ['{{internal.logins}}', 'ubuntu', 'root'], node_labels: { env: ['staging'] } },
    deny: { logins: ['root'] },
  });
  const checker = new AccessChecker([dev], { logins: ['alice'] });

  it('gives the allowed logins minus denied ones as principals', () => {
    assert.deepEqual(checker.logins().sort(), ['alice', 'ubuntu']);
  });
  it('takes the shortest max_session_ttl', () => {
    assert.equal(new AccessChecker([dev, builtin('access')], {}).maxSessionTTL(), 2 * 3_600_000);
  });
  it('allows a login on a node whose labels match', () => {
    assert.deepEqual(checker.checkNodeLogin({ name: 'n1', labels: { env: 'staging' } }, 'alice'), { allowed: true });
  });
  it('refuses a label mismatch, a login not granted, and a denied login', () => {
    assert.equal(checker.checkNodeLogin({ name: 'n1', labels: { env: 'prod' } }, 'alice').allowed, false);
    assert.equal(checker.checkNodeLogin({ name: 'n1', labels: { env: 'staging' } }, 'bob').allowed, false);
    const root = checker.checkNodeLogin({ name: 'n1', labels: { env: 'staging' } }, 'root');
    assert.equal(root.allowed, false);
    assert.match((root as { reason: string }).reason, /denies login "root"/);
  });
  it('lets a deny on node labels win over an allow from another role', () => {
    const noProd = role('no-prod', { deny: { node_labels: { env: 'prod' } } });
    const both = new AccessChecker([builtin('access'), noProd], { logins: ['alice'] });
    assert.equal(both.checkNodeLogin({ name: 'p', labels: { env: 'prod' } }, 'alice').allowed, false);
    assert.equal(both.canSeeNode({ name: 'p', labels: { env: 'prod' } }), false);
    assert.equal(both.checkNodeLogin({ name: 's', labels: { env: 'staging' } }, 'alice').allowed, true);
  });
  it(
    'lets a user join a live session only with its login on the node, ' +
      'and others only with the session_tracker rule',
    () => {
      const node = { name: 'n1', labels: { env: 'staging' } };
      const rootSession = { user: 'alice', login: 'root' };
      const joiner = role('joiner', {
        allow: { rules: [{ resources: ['session_tracker'], verbs: ['read', 'update'] }] },
      });
      const staff = role('staff', { allow: { logins: ['{{internal.logins}}'], node_labels: { '*': '*' } } });
      // May join sessions, not log in as root: no root session, in either mode.
      const bob = new AccessChecker([staff, joiner], { logins: ['bob'] });
      assert.match(
        (bob.checkSessionJoin(node, rootSession, 'bob', 'observer') as { reason: string }).reason,
        /login "root"/,
      );
      assert.equal(bob.checkSessionJoin(node, rootSession, 'bob', 'peer').allowed, false);
      assert.equal(bob.checkSessionJoin(node, { user: 'alice', login: 'bob' }, 'bob', 'peer').allowed, true);
      // May log in as root and join: yes; as root without the rule: not someone else's session, but one's own.
      const carol = new AccessChecker([staff, joiner], { logins: ['root'] });
      assert.deepEqual(carol.checkSessionJoin(node, rootSession, 'carol', 'peer'), { allowed: true });
      const dave = new AccessChecker([staff], { logins: ['root'] });
      assert.equal(dave.checkSessionJoin(node, rootSession, 'dave', 'observer').allowed, false);
      assert.equal(dave.checkSessionJoin(node, { user: 'dave', login: 'root' }, 'dave', 'peer').allowed, true);
      // The owner too needs the login now: a role that denies it since keeps them out of a second seat.
      const noRoot = role('no-root', { deny: { logins: ['root'] } });
      const alice = new AccessChecker([staff, noRoot], { logins: ['root'] });
      assert.equal(alice.checkSessionJoin(node, rootSession, 'alice', 'peer').allowed, false);
    },
  );
  it('checks API rules with deny winning', () => {
    const editor = new AccessChecker([builtin('editor')], {});
    assert.deepEqual(editor.checkRule('user', 'create'), { allowed: true });
    assert.equal(editor.checkRule('cert_authority', 'delete').allowed, false);
    assert.equal(new AccessChecker([builtin('access')], {}).checkRule('user', 'create').allowed, false);
    const noUsers = role('no-users', { deny: { rules: [{ resources: ['user'], verbs: ['*'] }] } });
    assert.equal(new AccessChecker([builtin('editor'), noUsers], {}).checkRule('user', 'list').allowed, false);
  });
});
