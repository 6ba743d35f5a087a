// What a joining host may be called. The host name and addresses a host gives at join become the principals of its
// SSH host certificate and the SANs of its TLS certificate, which clients trust for exactly those names (OpenSSH's
// `@cert-authority *` line, wsh's TLS checks). So a join gets only names that can be its own (README "Joining"):
// no wildcards, names and addresses that parse as such, loopback only for a host on the auth server's own machine,
// no host name another node holds now, and no name in the cluster's own domain but its own.
import { isIP } from 'node:net';
import { AlreadyExists, BadParameter } from '../api/errors.ts';

const MAX_DNS_NAME = 253;
/** A host has a name and a handful of addresses; 32 is room for every interface of a large machine. */
export const MAX_JOIN_ADDRESSES = 32;
// Host names as they are found in practice: RFC 1123 labels, with the underscore some sites use.
const DNS_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function isDNSName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_DNS_NAME && name.split('.').every((label) => DNS_LABEL.test(label));
}

/** localhost (and names under it, RFC 6761 6.3), 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackName(name: string): boolean {
  const lower = name.toLowerCase();
  if (lower === 'localhost' || lower.endsWith('.localhost')) return true;
  if (isIP(lower) === 4) return lower.startsWith('127.');
  if (isIP(lower) === 6) {
    const canonical = new URL(`http://[${lower}]`).hostname.slice(1, -1);
    return canonical === '::1' || /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(canonical);
  }
  return false;
}

/**
 * Whether the address a join came from (connsource.ts: the TCP peer, or the client a proxy vouched for) is this
 * machine's: 127.0.0.1 or ::1, the source the kernel gives every connection to a loopback address that binds none.
 * Other 127.0.0.0/8 sources only come from a client that chose one, and get no loopback names.
 */
export function isLoopbackAddress(remoteAddr: string): boolean {
  if (!isLoopbackName(remoteAddr) || isIP(remoteAddr) === 0) return false;
  const canonical = isIP(remoteAddr) === 6 ? new URL(`http://[${remoteAddr}]`).hostname.slice(1, -1) : remoteAddr;
  return canonical === '127.0.0.1' || canonical === '::1' || canonical === '::ffff:7f00:1';
}

export interface JoinNameContext {
  cluster: string;
  /** The joining host's address: the auth server's TCP peer, or the client a proxy's signed header names. */
  remoteAddr: string;
  /** Host names and host ids of the nodes heartbeating now, lower case. Empty for a join that is not a node's. */
  liveNodeNames: ReadonlySet<string>;
}

/**
 * Checks a join's host name and addresses against the rules above and returns the addresses to certify. Loopback
 * addresses from a host that is not on the auth server's machine are left out rather than refused: every listening
 * node offers `localhost` and 127.0.0.1 (config/listen.ts nodeAddresses), which only a local host may have.
 */
export function checkJoinNames(req: { hostname: string; addresses: string[] }, ctx: JoinNameContext): string[] {
  const local = isLoopbackAddress(ctx.remoteAddr);
  const hostname = req.hostname;
  const badName = (why: string) => new BadParameter(`invalid host name "${hostname}": ${why}`);
  if (hostname.includes('*')) throw badName('wildcard names are not issued');
  if (!isDNSName(hostname) || isIP(hostname) !== 0) throw badName('not a DNS name');
  if (!local && isLoopbackName(hostname)) {
    throw badName("a loopback name is only for a host on the auth server's machine");
  }
  if (ctx.liveNodeNames.has(hostname.toLowerCase())) {
    throw new AlreadyExists(
      `host name "${hostname}" is held by a node heartbeating now: choose another, or remove that node first`,
    );
  }
  if (req.addresses.length > MAX_JOIN_ADDRESSES) {
    throw new BadParameter(`too many addresses (at most ${MAX_JOIN_ADDRESSES})`);
  }
  const own = `${hostname}.${ctx.cluster}`.toLowerCase();
  const issued: string[] = [];
  for (const addr of req.addresses) {
    const badAddr = (why: string) => new BadParameter(`invalid address "${addr}": ${why}`);
    if (addr.includes('*')) throw badAddr('wildcard names are not issued');
    if (isIP(addr) === 0 && !isDNSName(addr)) throw badAddr('not an IP address or a DNS name');
    if (isLoopbackName(addr)) {
      if (local) issued.push(addr);
      continue;
    }
    const lower = addr.toLowerCase();
    if (ctx.liveNodeNames.has(lower)) {
      throw new AlreadyExists(`address "${addr}" is the name of a node heartbeating now`);
    }
    if (lower.endsWith(`.${ctx.cluster.toLowerCase()}`) && lower !== own) {
      throw badAddr(`names under .${ctx.cluster} are the cluster's own (only ${own} is this host's)`);
    }
    issued.push(addr);
  }
  return issued;
}
