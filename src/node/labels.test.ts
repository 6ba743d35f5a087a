import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startDynamicLabels } from './labels.ts';

describe('dynamic labels', () => {
  it('sets a label to the trimmed output of its command and reports the change', async () => {
    let changes = 0;
    const labels = startDynamicLabels(
      [{ name: 'greeting', command: ['echo', '  hello  '], period: '1h' }],
      () => changes++,
    );
    while (!labels.values.greeting) await new Promise((r) => setTimeout(r, 10));
    labels.stop();
    assert.equal(labels.values.greeting, 'hello');
    assert.equal(changes, 1);
  });
  it('says "error" when the command fails or does not exist', async () => {
    const labels = startDynamicLabels(
      [
        { name: 'fails', command: ['false'], period: '1h' },
        { name: 'missing', command: ['/no/such/command'], period: '1h' },
      ],
      () => {},
    );
    while (!labels.values.fails || !labels.values.missing) await new Promise((r) => setTimeout(r, 10));
    labels.stop();
    assert.deepEqual(labels.values, { fails: 'error', missing: 'error' });
  });
});
