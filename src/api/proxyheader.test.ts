import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  MAX_PROXY_HEADER_BYTES,
  PROXY_HEADER_MAGIC,
  encodeProxyHeader,
  mayBeProxyHeader,
  parseProxyHeader,
  verifyProxyHeaderSignature,
  type ProxyHeaderFields,
} from './proxyheader.ts';

const proxyKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function fields(over: Partial<ProxyHeaderFields> = {}): ProxyHeaderFields {
  const nonce = randomBytes(16);
  const certDer = randomBytes(900);
  return { clientAddr: '203.0.113.9', clientPort: 51234, timeMs: 1_780_000_000_000, nonce, certDer, ...over };
}

function parsedOk(bytes: Buffer) {
  const parsed = parseProxyHeader(bytes);
  assert.equal(parsed.status, 'ok', JSON.stringify(parsed));
  return parsed as Extract<typeof parsed, { status: 'ok' }>;
}

describe('the proxy header codec', () => {
  it('reads back what was written, with the length of the header and the TLS bytes after it left alone', () => {
    const f = fields({ clientAddr: '2001:db8::7' });
    const header = encodeProxyHeader(f, proxyKey.privateKey);
    const tlsBytes = Buffer.from([0x16, 0x03, 0x01]);
    const { header: got, length } = parsedOk(Buffer.concat([header, tlsBytes]));
    assert.equal(length, header.length);
    const { clientAddr, clientPort, timeMs, nonce, certDer } = got;
    assert.deepEqual({ clientAddr, clientPort, timeMs, nonce, certDer }, f);
    assert.equal(verifyProxyHeaderSignature(got, proxyKey.publicKey), true);
  });

  it('refuses a signature by another key, and one over bytes changed after signing', () => {
    const header = encodeProxyHeader(fields(), proxyKey.privateKey);
    assert.equal(verifyProxyHeaderSignature(parsedOk(header).header, otherKey.publicKey), false);
    // Another client address of the same length, as an attacker on the wire would write.
    const tampered = Buffer.from(header.toString('latin1').replace('203.0.113.9', '127.000.0.1'), 'latin1');
    const forged = parseProxyHeader(tampered);
    assert.equal(forged.status, 'invalid', 'a changed address that is no IP address is refused before the signature');
    const retimed = Buffer.from(header);
    const lastTimeByte = PROXY_HEADER_MAGIC.length + 3 + 1 + 11 + 2 + 7;
    retimed.writeUInt8(retimed.readUInt8(lastTimeByte) ^ 1, lastTimeByte);
    assert.equal(verifyProxyHeaderSignature(parsedOk(retimed).header, proxyKey.publicKey), false);
  });

  it('waits for the rest of a header that has not all arrived, and tells TLS and garbage from a header', () => {
    const header = encodeProxyHeader(fields(), proxyKey.privateKey);
    for (const n of [1, 5, 10, header.length - 1]) {
      assert.deepEqual(parseProxyHeader(header.subarray(0, n)), { status: 'incomplete' });
    }
    assert.equal(mayBeProxyHeader(Buffer.from([0x16, 0x03])), false);
    assert.equal(mayBeProxyHeader(Buffer.from('WARD')), true);
    assert.equal(mayBeProxyHeader(Buffer.from('WARX')), false);
    assert.equal(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')).status, 'invalid');
  });

  it('refuses a header whose declared length is cut short, too long, or leaves bytes after the signature', () => {
    const header = encodeProxyHeader(fields(), proxyKey.privateKey);
    const lengthAt = PROXY_HEADER_MAGIC.length + 1;
    const withLength = (n: number, body = header) => {
      const copy = Buffer.from(body);
      copy.writeUInt16BE(n, lengthAt);
      return copy;
    };
    const declared = header.readUInt16BE(lengthAt);
    const invalid = (reason: string) => ({ status: 'invalid', reason });
    assert.deepEqual(parseProxyHeader(withLength(declared - 10)), invalid('proxy header is truncated'));
    assert.deepEqual(parseProxyHeader(withLength(0xffff)), invalid('proxy header is too long'));
    const padded = withLength(declared + 3, Buffer.concat([header, Buffer.alloc(3)]));
    assert.deepEqual(parseProxyHeader(padded), invalid('proxy header has bytes after its signature'));
    assert.ok(MAX_PROXY_HEADER_BYTES < 0xffff);
  });

  it('refuses another version and an address that is no IP address', () => {
    const header = encodeProxyHeader(fields(), proxyKey.privateKey);
    const v2 = Buffer.from(header);
    v2[PROXY_HEADER_MAGIC.length] = 2;
    assert.deepEqual(parseProxyHeader(v2), { status: 'invalid', reason: 'unknown proxy header version 2' });
    assert.throws(() => encodeProxyHeader(fields({ clientAddr: 'localhost' }), proxyKey.privateKey), RangeError);
  });
});
