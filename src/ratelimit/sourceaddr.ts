// Who a request comes from, for counting: sign-in failures at the auth server and rate limits at the
// proxy are kept per source. An IPv4 peer is its address (also when a dual-stack socket reports it as
// ::ffff:a.b.c.d); an IPv6 peer is its /64, because one subscriber is routinely given a whole /64 and
// would otherwise get 2^64 fresh budgets.
import net from 'node:net';

/** The eight 16-bit groups of an IPv6 address, or undefined if it is not one. */
function ipv6Groups(text: string): number[] | undefined {
  if (!net.isIPv6(text)) return undefined;
  let head = text;
  const tail: number[] = [];
  if (text.includes('.')) {
    // An embedded dotted quad fills the last two groups.
    const cut = text.lastIndexOf(':');
    const [a, b, c, d] = text
      .slice(cut + 1)
      .split('.')
      .map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    head = text.slice(0, cut);
    if (head.endsWith(':')) head += ':';
    if (head.endsWith(':::')) head = head.slice(0, -1);
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const l = left ? left.split(':').map((g) => parseInt(g, 16)) : [];
  const r = right ? right.split(':').map((g) => parseInt(g, 16)) : [];
  const fill = 8 - tail.length - l.length - r.length;
  return right === undefined ? [...l, ...tail] : [...l, ...Array<number>(Math.max(0, fill)).fill(0), ...r, ...tail];
}

/** The key a source address is counted under: `a.b.c.d`, `xxxx:xxxx:xxxx:xxxx::/64`, or `unknown`. */
export function sourceKey(addr: string): string {
  const text = addr.trim().replace(/%.*$/, '');
  if (net.isIPv4(text)) return text;
  const groups = ipv6Groups(text);
  if (!groups || groups.length !== 8) return 'unknown';
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}
