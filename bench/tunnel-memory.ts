// Measures the proxy's resident memory per idle reverse tunnel: a proxy process (tunnel server behind a net
// listener) and an agent process holding N tunnels. `node --import tsx bench/tunnel-memory.ts [N]`.
// Target (issue 6): at most 30 KiB RSS per idle tunnel. The figure is all a tunnel keeps: socket, records, multiplexer.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { pino } from 'pino';
import { createTLSCA } from '../src/crypto/x509.ts';
import { startTunnelClient } from '../src/tunnel/client.ts';
import { createTunnelServer } from '../src/tunnel/server.ts';
import { hostCert } from './hostcert.ts';

const log = pino({ level: 'silent' });
const role = process.argv[2];

const rssMiB = () => process.memoryUsage().rss / 1024 / 1024;

if (role === 'proxy') {
  const [ca, proxyCert] = JSON.parse(process.env.BENCH_CERTS!) as [
    { certPem: string },
    { keyPem: string; certPem: string },
  ];
  const tunnels = createTunnelServer({
    tls: { keyPem: proxyCert.keyPem, certChainPem: proxyCert.certPem + ca.certPem, caPems: [ca.certPem] },
    log,
  });
  const listener = net.createServer((s) => {
    s.on('error', () => {});
    tunnels.handle(s);
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  process.on('message', () => {
    globalThis.gc?.();
    process.send!({
      rss: rssMiB(),
      agents: tunnels.agents().length,
      heap: process.memoryUsage().heapUsed / 1024 / 1024,
    });
  });
  process.send!({ port: (listener.address() as net.AddressInfo).port });
} else {
  const n = Number(process.argv[2] ?? 2000);
  const ca = await createTLSCA({ clusterName: 'bench', now: new Date() });
  const proxyCert = await hostCert(ca, 'proxy', ['proxy']);
  const proxy = fork(new URL(import.meta.url).pathname, ['proxy'], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, BENCH_CERTS: JSON.stringify([ca, proxyCert]) },
  });
  const ask = async () => {
    proxy.send('stats');
    return (await once(proxy, 'message'))[0] as { rss: number; agents: number; heap: number };
  };
  const { port } = (await once(proxy, 'message'))[0] as { port: number };
  await new Promise((r) => setTimeout(r, 500));
  const base = await ask();
  // Agents share one certificate here: the proxy keys tunnels by host id, so give each its own.
  const agents = [];
  for (let i = 0; i < n; i++) {
    const cert = await hostCert(ca, `node-${i}`, ['node']);
    agents.push(
      startTunnelClient({
        proxyAddrs: () => [`127.0.0.1:${port}`],
        tls: { ...cert, caPems: [ca.certPem] },
        onConnection: (s) => s.destroy(),
        log,
      }),
    );
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 50));
  }
  const deadline = Date.now() + 120_000;
  let now = await ask();
  while (now.agents < n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    now = await ask();
  }
  await new Promise((r) => setTimeout(r, 2000));
  now = await ask();
  const perTunnel = ((now.rss - base.rss) * 1024) / now.agents;
  console.log(
    `proxy RSS ${base.rss.toFixed(1)} MiB idle -> ${now.rss.toFixed(1)} MiB with ${now.agents} tunnels: ` +
      `${perTunnel.toFixed(1)} KiB RSS, ${(((now.heap - base.heap) * 1024) / now.agents).toFixed(1)} KiB JS heap ` +
      `per idle tunnel ` +
      `(target <= 30 KiB: ${perTunnel <= 30 ? 'met' : 'not met'})`,
  );
  await Promise.all(agents.map((a) => a.close()));
  proxy.kill();
}
