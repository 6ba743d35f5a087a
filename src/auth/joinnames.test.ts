import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlreadyExists, BadParameter } from '../api/errors.ts';
import { checkJoinNames, isLoopbackName, MAX_JOIN_ADDRESSES } from './joinnames.ts';

const remote = { cluster: 'lab', remoteAddr: '203.0.113.7', liveNodeNames: new Set<string>() };
const local = { ...remote, remoteAddr: '127.0.0.1' };

describe('the names a joining host is issued', () => {
  it('issues a plain host name with IP addresses and DNS names', () => {
    assert.deepEqual(checkJoinNames({ hostname: 'web-1', addresses: ['10.0.0.5', 'fd00::5', 'web-1.example.com', 'web-1.lab'] }, remote),
      ['10.0.0.5', 'fd00::5', 'web-1.example.com', 'web-1.lab']);
  });

  it('refuses wildcards in the host name and in the addresses', () => {
    assert.throws(() => checkJoinNames({ hostname: '*', addresses: [] }, local), BadParameter);
    assert.throws(() => checkJoinNames({ hostname: 'web', addresses: ['*.example.com'] }, local), /wildcard names are not issued/);
    assert.throws(() => checkJoinNames({ hostname: 'web', addresses: ['*'] }, local), /wildcard/);
  });

  it('refuses loopback host names, and leaves loopback addresses out, for a host that is not on this machine', () => {
    for (const hostname of ['localhost', 'LocalHost', 'db.localhost']) {
      assert.throws(() => checkJoinNames({ hostname, addresses: [] }, remote), /loopback name is only for a host on the auth server's machine/);
    }
    const addresses = ['localhost', '127.0.0.1', '127.8.9.10', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '10.1.2.3'];
    assert.deepEqual(checkJoinNames({ hostname: 'web', addresses }, remote), ['10.1.2.3']);
  });

  it('issues loopback names to a host that joined from this machine (IPv4, IPv6, IPv4-mapped)', () => {
    for (const remoteAddr of ['127.0.0.1', '127.0.0.2', '::1', '::ffff:127.0.0.1']) {
      assert.deepEqual(checkJoinNames({ hostname: 'localhost', addresses: ['localhost', '127.0.0.1', '::1'] }, { ...remote, remoteAddr }),
        ['localhost', '127.0.0.1', '::1']);
    }
  });

  it('takes an unknown source address for a remote one', () => {
    assert.deepEqual(checkJoinNames({ hostname: 'web', addresses: ['localhost'] }, { ...remote, remoteAddr: '' }), []);
  });

  it('refuses a host name or an address that a node heartbeating now holds, in any case', () => {
    const liveNodeNames = new Set(['db-1', '3f0c2a4e-9d1b-4c55-8f00-0123456789ab']);
    assert.throws(() => checkJoinNames({ hostname: 'DB-1', addresses: [] }, { ...remote, liveNodeNames }), AlreadyExists);
    assert.throws(() => checkJoinNames({ hostname: 'web', addresses: ['db-1'] }, { ...remote, liveNodeNames }), AlreadyExists);
    assert.throws(() => checkJoinNames({ hostname: 'web', addresses: ['3f0c2a4e-9d1b-4c55-8f00-0123456789ab'] }, { ...remote, liveNodeNames }),
      AlreadyExists);
  });

  it('refuses names in the cluster\'s domain other than the host\'s own', () => {
    assert.throws(() => checkJoinNames({ hostname: 'web', addresses: ['db-1.lab'] }, remote), /names under \.lab are the cluster's own/);
    assert.throws(() => checkJoinNames({ hostname: 'web', addresses: ['DB-1.LAB'] }, remote), /cluster's own/);
  });

  it('refuses what is not an IP address or a DNS name, and too many addresses', () => {
    for (const addr of ['a b', 'x..y', '-lead.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(127)}a`, 'user@host', '']) {
      assert.throws(() => checkJoinNames({ hostname: 'web', addresses: [addr] }, remote), /not an IP address or a DNS name/, addr);
    }
    assert.throws(() => checkJoinNames({ hostname: '10.0.0.1', addresses: [] }, remote), /not a DNS name/);
    assert.throws(() => checkJoinNames({ hostname: 'a@b', addresses: [] }, remote), /not a DNS name/);
    const many = Array.from({ length: MAX_JOIN_ADDRESSES + 1 }, (_, i) => `10.0.0.${i}`);
    assert.throws(() => checkJoinNames({ hostname: 'web', addresses: many }, remote), /too many addresses/);
  });

  it('knows loopback names from ones that only look like them', () => {
    for (const n of ['localhost', 'a.localhost', '127.0.0.1', '127.255.255.254', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopbackName(n), n);
    for (const n of ['localhost.example.com', '128.0.0.1', '10.127.0.1', '::2', '::ffff:10.0.0.1', 'mylocalhost']) assert.ok(!isLoopbackName(n), n);
  });
});
