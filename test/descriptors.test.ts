// A `ward start` near its file-descriptor limit says so: at the limit, libuv accepts and closes every new connection
// without a word, so this warning is all an operator gets (src/diag/descriptors.ts). The process runs under a low
// `ulimit -n`, and the test holds connections open to its proxy port (each costs the process one descriptor; the
// proxy drops one that sends nothing after 10 s, so closed ones are replaced) until the warning appears.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { cleanup, delay, startCluster } from './harness.ts';

after(cleanup);

const WARNING = /nearly out of file descriptors/;

describe('file descriptors', () => {
  it('ward start warns once a process uses 90% of its descriptor limit', async () => {
    const limit = 400;
    const cluster = await startCluster({ fdLimit: limit });
    const open = () => readdirSync(`/proc/${cluster.pid}/fd`).length;
    assert.ok(open() < limit * 0.8, `the cluster alone uses ${open()} of ${limit}`);
    await delay(11_000); // one check with the cluster idle: no warning
    assert.doesNotMatch(cluster.log, WARNING);

    const [host, port] = [cluster.proxyAddr.split(':')[0]!, Number(cluster.proxyAddr.split(':')[1])];
    const sockets = new Set<net.Socket>();
    const fill = () => {
      for (let n = Math.ceil(limit * 0.95) - open(); n > 0; n--) {
        const s = net.connect(port, host);
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      }
    };
    try {
      const deadline = Date.now() + 25_000;
      while (!WARNING.test(cluster.log) && Date.now() < deadline) {
        fill();
        await delay(500);
      }
      assert.match(cluster.log, WARNING, `no warning with ${open()} of ${limit} descriptors open`);
      assert.match(cluster.log, new RegExp(`"limit":${limit}`));
      assert.equal(cluster.log.match(new RegExp(WARNING.source, 'g'))!.length, 1, 'warned once');
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
