// The file-descriptor warning (diag/descriptors.ts): read from this process's /proc, and logged once per crossing.
import assert from 'node:assert/strict';
import { openSync, closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import pino from 'pino';
import { descriptorUse, watchDescriptors, type DescriptorUse } from './descriptors.ts';

describe('file descriptor warning', () => {
  it("reads this process's open descriptors and limit, and sees one more when a file is opened", async () => {
    const before = (await descriptorUse())!;
    assert.ok(before.open > 0 && before.limit >= before.open, JSON.stringify(before));
    const fd = openSync('/dev/null', 'r');
    try {
      assert.equal((await descriptorUse())!.open, before.open + 1);
    } finally {
      closeSync(fd);
    }
  });

  it('warns once at 90% of the limit, and again only after falling below 80%', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    let use: DescriptorUse = { open: 100, limit: 1000 };
    const stop = watchDescriptors(log, async () => use, 5);
    try {
      const warnings = () => lines.filter((l) => l.includes('nearly out of file descriptors')).length;
      await sleep(30);
      assert.equal(warnings(), 0);
      use = { open: 905, limit: 1000 };
      await sleep(30);
      assert.equal(warnings(), 1, 'once, not at every check');
      assert.match(lines[0]!, /"open":905,"limit":1000/);
      use = { open: 850, limit: 1000 };
      await sleep(30);
      use = { open: 950, limit: 1000 };
      await sleep(30);
      assert.equal(warnings(), 1, 'still the same episode above 80%');
      use = { open: 700, limit: 1000 };
      await sleep(30);
      use = { open: 920, limit: 1000 };
      await sleep(30);
      assert.equal(warnings(), 2);
    } finally {
      stop();
    }
  });
});
