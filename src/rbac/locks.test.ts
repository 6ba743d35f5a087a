import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Lock } from '../api/types.ts';
import { lockFor } from './locks.ts';

const ID = '0b5e1c4e-8f1a-4c2b-9d3e-7a6b5c4d3e2f';
const OTHER_ID = '1c6f2d5f-9a2b-4d3c-8e4f-8b7c6d5e4f30';
const now = new Date('2026-12-07T12:00:00Z');
const hostLock = (node: string, expires?: string): Lock => ({
  kind: 'lock',
  version: 'v1',
  metadata: { name: `l-${node}`, ...(expires ? { expires } : {}) },
  spec: { target: { node } },
});

describe('host locks', () => {
  it('matches a lock on a host id by that id, whatever name the host gives', () => {
    assert.ok(lockFor([hostLock(ID)], { node: { id: ID, name: 'renamed' } }, now));
    assert.equal(lockFor([hostLock(ID)], { node: { id: OTHER_ID, name: ID } }, now), undefined);
  });

  it('never matches a lock on a host id by a host name equal to it', () => {
    assert.equal(lockFor([hostLock(ID)], { node: { name: ID } }, now), undefined);
  });

  it('matches a lock stored before locks named ids by the certified host name', () => {
    assert.ok(lockFor([hostLock('evil1')], { node: { id: ID, name: 'evil1' } }, now));
    assert.equal(lockFor([hostLock('evil1')], { node: { id: ID, name: 'evil1b' } }, now), undefined);
    assert.equal(lockFor([hostLock('evil1')], { node: { id: ID } }, now), undefined);
  });

  it('ignores a lock past its expiry', () => {
    assert.equal(lockFor([hostLock(ID, '2026-12-07T11:59:59Z')], { node: { id: ID } }, now), undefined);
  });
});
