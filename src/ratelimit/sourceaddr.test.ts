import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sourceKey } from './sourceaddr.ts';

describe('source address keys', () => {
  it('keys an IPv4 peer by its address, also as a dual-stack socket reports it', () => {
    assert.equal(sourceKey('127.0.0.2'), '127.0.0.2');
    assert.equal(sourceKey('::ffff:127.0.0.2'), '127.0.0.2');
    assert.equal(sourceKey('::FFFF:7f00:2'), '127.0.0.2');
  });

  it('keys an IPv6 peer by its /64, so one subscriber does not get 2^64 budgets', () => {
    assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
    assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(sourceKey('64:ff9b::1.2.3.4'), '64:ff9b:0:0::/64');
  });

  it('keys anything else as unknown', () => {
    assert.equal(sourceKey(''), 'unknown');
    assert.equal(sourceKey('localhost'), 'unknown');
    assert.equal(sourceKey('1.2.3.4.5'), 'unknown');
  });
});
