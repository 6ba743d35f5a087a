import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlreadyExists, BadParameter } from '../api/errors.ts';
import { checkJoinNames, isLoopbackName, MAX_JOIN_ADDRESSES, type JoinNameContext } from './joinnames.ts';

const remote: JoinNameContext = { cluster: 'lab', remoteAddr: '203.0.113.7', liveNodeNames: new Set<string>() };
const local: JoinNameContext = { ...remote, remoteAddr: '127.0.0.1' };
const join = (hostname: string, addresses: string[], ctx = remote) => checkJoinNames({ hostname, addresses }, ctx);

describe('the names a joining host is issued', () => {
  it('issues a plain host name with IP addresses and DNS names', () => {
    const addresses = ['10.0.0.5', 'fd00::5', 'web-1.example.com', 'web-1.lab'];
    assert.deepEqual(join('web-1', addresses), addresses);
  });

  it('refuses wildcards in the host name and in the addresses', () => {
    assert.throws(() => join('*', [], local), BadParameter);
    assert.throws(() => join('web', ['*.example.com'], local), /wildcard names are not issued/);
    assert.throws(() => join('web', ['*'], local), /wildcard/);
  });

  it('refuses loopback host names, and leaves loopback addresses out, for a host that is not on this machine', () => {
    for (const hostname of ['localhost', 'LocalHost', 'db.localhost']) {
      assert.throws(() => join(hostname, []), /loopback name is only for a host on the auth server's machine/);
    }
    const addresses = [
      'localhost',
      '127.0.0.1',
      '127.8.9.10',
      '::1',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
      '10.1.2.3',
    ];
    assert.deepEqual(join('web', addresses), ['10.1.2.3']);
  });

  it('issues loopback names to a host that joined from this machine (IPv4, IPv6, IPv4-mapped)', () => {
    for (const remoteAddr of ['127.0.0.1', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      const addresses = ['localhost', '127.0.0.1', '::1'];
      assert.deepEqual(join('localhost', addresses, { ...remote, remoteAddr }), addresses);
    }
  });

  it('takes a join from another loopback source, one a client bound on purpose, for a remote one', () => {
    for (const remoteAddr of ['127.0.0.2', '::ffff:127.0.0.2', 'localhost']) {
      assert.deepEqual(join('web', ['localhost', '127.0.0.1', '10.1.2.3'], { ...remote, remoteAddr }), ['10.1.2.3']);
    }
  });

  it('takes an unknown source address for a remote one', () => {
    assert.deepEqual(join('web', ['localhost'], { ...remote, remoteAddr: '' }), []);
  });

  it('refuses a host name or an address that a node heartbeating now holds, in any case', () => {
    const id = '3f0c2a4e-9d1b-4c55-8f00-0123456789ab';
    const ctx = { ...remote, liveNodeNames: new Set(['db-1', id]) };
    assert.throws(() => join('DB-1', [], ctx), AlreadyExists);
    assert.throws(() => join('web', ['db-1'], ctx), AlreadyExists);
    assert.throws(() => join('web', [id], ctx), AlreadyExists);
  });

  it("refuses names in the cluster's domain other than the host's own", () => {
    assert.throws(() => join('web', ['db-1.lab']), /names under \.lab are the cluster's own/);
    assert.throws(() => join('web', ['DB-1.LAB']), /cluster's own/);
  });

  it('refuses what is not an IP address or a DNS name, and too many addresses', () => {
    const junk = ['a b', 'x..y', '-lead.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(127)}a`, 'user@host', ''];
    for (const addr of junk) assert.throws(() => join('web', [addr]), /not an IP address or a DNS name/, addr);
    assert.throws(() => join('10.0.0.1', []), /not a DNS name/);
    assert.throws(() => join('a@b', []), /not a DNS name/);
    const many = Array.from({ length: MAX_JOIN_ADDRESSES + 1 }, (_, i) => `10.0.0.${i}`);
    assert.throws(() => join('web', many), /too many addresses/);
  });

  it('knows loopback names from ones that only look like them', () => {
    const loopback = ['localhost', 'a.localhost', '127.0.0.1', '127.255.255.254', '::1', '::ffff:127.0.0.1'];
    for (const n of loopback) assert.ok(isLoopbackName(n), n);
    for (const n of ['localhost.example.com', '128.0.0.1', '10.127.0.1', '::2', '::ffff:10.0.0.1', 'mylocalhost']) {
      assert.ok(!isLoopbackName(n), n);
    }
  });
});
