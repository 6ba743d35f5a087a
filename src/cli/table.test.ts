import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { table } from './table.ts';

describe('CLI tables', () => {
  it('pads every column but the last to its widest cell, two spaces apart, with a rule under the headers', () => {
    assert.equal(
      table(
        ['Name', 'Address', 'Labels'],
        [
          ['db-1', '10.0.0.5:3022', 'env=prod'],
          ['web-10', '⟵ Tunnel', ''],
        ],
      ),
      [
        'Name    Address        Labels',
        '------  -------------  --------',
        'db-1    10.0.0.5:3022  env=prod',
        'web-10  ⟵ Tunnel',
      ].join('\n') + '\n',
    );
  });

  it('prints the headers alone for no rows, and treats a missing cell as empty', () => {
    assert.equal(table(['A', 'B'], []), 'A  B\n-  -\n');
    assert.equal(table(['A', 'B', 'C'], [['x']]), 'A  B  C\n-  -  -\nx\n');
  });
});
