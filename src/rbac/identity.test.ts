import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Lock, User } from '../api/types.ts';
import { identityRefusal, isUserLocked } from './identity.ts';

const now = new Date('2026-12-07T12:00:00Z');
const HOST = '0b5e1c4e-8f1a-4c2b-9d3e-7a6b5c4d3e2f';
const later = new Date(now.getTime() + 60_000).toISOString();
const earlier = new Date(now.getTime() - 60_000).toISOString();
const user = (lockedUntil?: string): User => ({
  kind: 'user',
  version: 'v1',
  metadata: { name: 'alice' },
  spec: { roles: ['access'], traits: {}, ...(lockedUntil ? { locked_until: lockedUntil } : {}) },
});
const lock = (target: Lock['spec']['target'], message?: string, expires?: string): Lock => ({
  kind: 'lock',
  version: 'v1',
  metadata: { name: 'l1', ...(expires ? { expires } : {}) },
  spec: { target, ...(message ? { message } : {}) },
});
const alice = { user: 'alice', roles: ['access', 'ops'], node: { id: HOST, name: 'web-1' } };

describe('identityRefusal', () => {
  it('lets a user who exists, is not locked and is named by no lock act', () => {
    const others = [lock({ user: 'bob' }), lock({ role: 'dev' }), lock({ node: 'db-1' })];
    assert.equal(identityRefusal(user(), others, alice, now), undefined);
  });

  it('tells a deleted user only "access denied", before any lock', () => {
    assert.equal(identityRefusal(undefined, [lock({ user: 'alice' }, 'incident')], alice, now), 'access denied');
  });

  it('refuses a user whose account is locked until a time not yet reached, and lets them in after it', () => {
    assert.equal(identityRefusal(user(later), [], alice, now), 'user "alice" is locked');
    assert.equal(identityRefusal(user(earlier), [], alice, now), undefined);
    assert.equal(isUserLocked(user(later), now), true);
    assert.equal(isUserLocked(user(earlier), now), false);
    assert.equal(isUserLocked(user(), now), false);
  });

  it("refuses a lock on the user, on any of the roles, or on the host, with the admin's message", () => {
    const onUser = [lock({ user: 'alice' }, 'incident 42')];
    assert.equal(identityRefusal(user(), onUser, alice, now), 'user "alice" is locked: incident 42');
    assert.equal(identityRefusal(user(), [lock({ role: 'ops' })], alice, now), 'role "ops" is locked');
    const onHost = [lock({ node: HOST }, 'maintenance')];
    assert.equal(identityRefusal(user(), onHost, alice, now), `node "${HOST}" is locked: maintenance`);
  });

  it('ignores a host lock where no host is named, and a lock past its expiry', () => {
    assert.equal(identityRefusal(user(), [lock({ node: HOST })], { user: 'alice', roles: ['access'] }, now), undefined);
    assert.equal(identityRefusal(user(), [lock({ user: 'alice' }, undefined, earlier)], alice, now), undefined);
  });

  it('decides by the roles the identity carries, not those the user holds now', () => {
    const onOps = [lock({ role: 'ops' })];
    assert.equal(identityRefusal(user(), onOps, { user: 'alice', roles: ['access'] }, now), undefined);
  });
});
