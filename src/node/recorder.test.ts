import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputDecoder } from './recorder.ts';

describe('recording output', () => {
  it('keeps a UTF-8 character split across two output chunks whole', () => {
    const d = new OutputDecoder();
    const bytes = Buffer.from('wörld ✓', 'utf8');
    const parts = [d.write(bytes.subarray(0, 2)), d.write(bytes.subarray(2, 9)), d.write(bytes.subarray(9)), d.end()];
    assert.equal(parts.join(''), 'wörld ✓');
    assert.equal(parts[0], 'w', 'the half character waits for its other half');
  });
});
