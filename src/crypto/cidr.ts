// CIDR address lists as OpenSSH reads them for the certificate critical option `source-address`
// (PROTOCOL.certkeys "Critical options"; OpenSSH match.c addr_match_cidr_list): comma-separated
// `addr` or `addr/len` entries, no wildcards, no negation, no host bits outside the mask.
import net from 'node:net';
import { BadParameter } from '../api/errors.ts';

// OpenSSH refuses any other character before an entry reaches the address parser.
const CIDR_CHARS = /^[0-9a-fA-F.:/]+$/;
const MAX_ENTRY = 46 + 3; // INET6_ADDRSTRLEN + "/nn", the bound OpenSSH applies
const MAX_ENTRIES = 256;

interface Network {
  bytes: Buffer;
  prefix: number;
}

/** 4 or 16 bytes for a literal IPv4 / IPv6 address, or null. */
function addressBytes(text: string): Buffer | null {
  if (net.isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (!net.isIPv6(text) || text.includes('%')) return null;
  let head = text;
  let v4: Buffer | null = null;
  if (text.includes('.')) {
    // An embedded dotted quad occupies the last two 16-bit groups.
    const cut = text.lastIndexOf(':');
    v4 = addressBytes(text.slice(cut + 1));
    if (v4 === null || v4.length !== 4) return null;
    head = `${text.slice(0, cut + 1)}0:0`;
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const l = left ? left.split(':') : [];
  const r = right ? right.split(':') : [];
  const groups = right === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  if (groups.length !== 8) return null;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (v4) v4.copy(out, 12);
  return out;
}

/**
 * The client address as sshd sees it: an IPv4-mapped IPv6 address (what a dual-stack Node socket
 * reports for an IPv4 peer) is compared as IPv4, and an interface zone is dropped.
 */
function clientAddress(text: string): Buffer | null {
  const bytes = addressBytes(text.replace(/%.*$/, ''));
  if (bytes?.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) && bytes.readUInt16BE(10) === 0xffff) {
    return bytes.subarray(12);
  }
  return bytes;
}

function parseEntry(entry: string): Network {
  if (entry.length === 0 || entry.length > MAX_ENTRY || !CIDR_CHARS.test(entry)) {
    throw new BadParameter(`invalid source-address entry "${entry.slice(0, 64)}"`);
  }
  const [addr, len, extra] = entry.split('/');
  const bytes = addressBytes(addr ?? '');
  if (bytes === null || extra !== undefined || (len !== undefined && !/^\d{1,3}$/.test(len))) {
    throw new BadParameter(`invalid source-address entry "${entry}"`);
  }
  const prefix = len === undefined ? bytes.length * 8 : Number(len);
  if (prefix > bytes.length * 8) throw new BadParameter(`invalid mask length in source-address entry "${entry}"`);
  // OpenSSH addr_pton_cidr: an address with bits set outside the mask is an "inconsistent mask length".
  if (!hostBitsZero(bytes, prefix)) throw new BadParameter(`host bits set in source-address entry "${entry}"`);
  return { bytes, prefix };
}

function bitAt(bytes: Buffer, bit: number): number {
  return (bytes[bit >> 3]! >> (7 - (bit % 8))) & 1;
}

function hostBitsZero(bytes: Buffer, prefix: number): boolean {
  for (let bit = prefix; bit < bytes.length * 8; bit++) if (bitAt(bytes, bit)) return false;
  return true;
}

function inNetwork(address: Buffer, network: Network): boolean {
  if (address.length !== network.bytes.length) return false;
  for (let bit = 0; bit < network.prefix; bit++) if (bitAt(address, bit) !== bitAt(network.bytes, bit)) return false;
  return true;
}

/** Parses a source-address list; BadParameter if any entry is malformed. */
export function parseCIDRList(list: string): Network[] {
  const entries = list.split(',');
  if (entries.length > MAX_ENTRIES) throw new BadParameter('too many source-address entries');
  return entries.map(parseEntry);
}

/**
 * True if `address` falls in one of the networks of `list`. A malformed list throws BadParameter,
 * which the certificate verifier turns into a denial; an unparsable client address matches nothing.
 */
export function matchCIDRList(address: string, list: string): boolean {
  const networks = parseCIDRList(list);
  const client = clientAddress(address);
  if (client === null) return false;
  return networks.some((n) => inNetwork(client, n));
}
