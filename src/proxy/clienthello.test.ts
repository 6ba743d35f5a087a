import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { peekClientHello } from './clienthello.ts';

/** Captures the ClientHello a real Node TLS client sends. */
async function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      sock.once('data', (d) => {
        resolve(d);
        sock.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      const client = tls.connect({ ...opts, port, host: '127.0.0.1' });
      client.on('error', () => undefined);
    });
    server.on('error', reject);
  });
}

describe('ClientHello peeking', () => {
  it('reads ALPN protocols and SNI from a real TLS client hello', async () => {
    const hello = await captureHello({ ALPNProtocols: ['ward-auth', 'h2'], servername: 'proxy.example.com' });
    const result = peekClientHello(hello);
    assert.equal(result.status, 'ok');
    assert.deepEqual(result.status === 'ok' && result.info, {
      alpn: ['ward-auth', 'h2'],
      serverName: 'proxy.example.com',
    });
  });
  it('asks for more bytes while the record is incomplete', async () => {
    const hello = await captureHello({ ALPNProtocols: ['h2'] });
    for (const n of [0, 3, 5, 40, hello.length - 1])
      assert.equal(peekClientHello(hello.subarray(0, n)).status, 'need-more');
  });
  it('rejects garbage and corrupted lengths without throwing', async () => {
    assert.equal(peekClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).status, 'invalid');
    const hello = await captureHello({ ALPNProtocols: ['h2'], servername: 'x.example' });
    for (let i = 5; i < hello.length; i++) {
      const bad = Buffer.from(hello);
      bad[i] = 0xff;
      assert.ok(['ok', 'invalid'].includes(peekClientHello(bad).status));
    }
  });
});
