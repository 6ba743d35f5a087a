// The DER writer emits the minimal encodings X.690 requires, and the reader refuses every other form: it reads
// certificates from the network (client certificates on every API call).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadParameter } from './errors.ts';
import * as der from './der.ts';

const hex = (b: Buffer) => b.toString('hex');

describe('DER writer', () => {
  it('writes INTEGERs minimally, with a zero octet only before a set top bit', () => {
    assert.equal(hex(der.unsignedInteger(Buffer.from([0x00, 0x00, 0x01]))), '020101');
    assert.equal(hex(der.unsignedInteger(Buffer.from([0x80]))), '02020080');
    assert.equal(hex(der.unsignedInteger(Buffer.from([0x00]))), '020100');
    assert.equal(hex(der.smallInteger(2)), '020102');
  });

  it('writes OIDs in base 128 and long lengths in the fewest octets', () => {
    assert.equal(hex(der.oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
    assert.equal(hex(der.oid('1.3.9999.7.1')), '06052bce0f0701');
    assert.equal(hex(der.octetString(Buffer.alloc(0x80)).subarray(0, 3)), '048180');
    assert.equal(hex(der.octetString(Buffer.alloc(0x100)).subarray(0, 4)), '04820100');
  });

  it('writes UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 4.1.2.5)', () => {
    assert.equal(der.time(new Date('2049-12-31T23:59:59.999Z')).toString('latin1', 2), '491231235959Z');
    assert.equal(der.time(new Date('2049-12-31T23:59:59Z'))[0], 0x17);
    assert.equal(der.time(new Date('2050-01-01T00:00:00Z')).toString('latin1', 2), '20500101000000Z');
    assert.equal(der.time(new Date('2050-01-01T00:00:00Z'))[0], 0x18);
  });
});

describe('DER reader', () => {
  it('reads nested elements and their bounds', () => {
    const buf = der.sequence(der.smallInteger(1), der.octetString(Buffer.from('hi')));
    const top = der.readElement(buf, 0);
    assert.deepEqual([top.tag, top.start, top.end], [0x30, 2, buf.length]);
    assert.deepEqual(
      der.children(buf, top).map((e) => e.tag),
      [0x02, 0x04],
    );
  });

  for (const [what, bytes] of [
    ['an indefinite length', '3080020101 0000'],
    ['a long-form length under 128', '048105 0102030405'],
    ['a length with a leading zero octet', '04820080' + '00'.repeat(0x80)],
    ['a length past the end', '0405 0102'],
    ['a multi-byte tag', '1f8101 00'],
    ['a truncated header', '30'],
  ] as const) {
    it(`refuses ${what}`, () => {
      const buf = Buffer.from(bytes.replace(/ /g, ''), 'hex');
      assert.throws(
        () => der.readElement(buf, 0),
        (err: unknown) => err instanceof BadParameter && /malformed DER/.test(err.message),
      );
    });
  }

  it('keeps a child inside its parent', () => {
    // The SEQUENCE says 3 bytes, its child claims 4.
    const buf = Buffer.from('3003040401020304', 'hex');
    assert.throws(() => der.children(buf, der.readElement(buf, 0, 5)), /malformed DER/);
  });
});
