// Joins a client connection to the stream towards a node, both ways with backpressure (pipe), and tears
// both down when either side ends or fails.
import type { Duplex } from 'node:stream';

export function splice(client: Duplex, upstream: Duplex): void {
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once('close', end);
  upstream.once('close', end);
  client.on('error', end);
  upstream.on('error', end);
}
