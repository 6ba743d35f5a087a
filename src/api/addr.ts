// host:port as users and configs write it, including [v6]:port. Its own module so that commands that start
// on every connection (`wsh proxy ssh`) can parse an address without loading the Auth API client.
import { ConnectionProblem } from './errors.ts';

export function splitAddr(addr: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr.trim());
  if (!m) throw new ConnectionProblem(`invalid address "${addr}" (expected host:port)`);
  return [m[1] ?? m[2]!, Number(m[3])];
}
