// CIDR lists for allowlists and trusted proxies, on node's own BlockList.
import { BlockList, isIP } from 'node:net';
import { Address6 } from 'ip-address';

export function parseCidr(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', prefixText, ...rest] = value.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) throw new Error(`"${value}" is not an IP address or CIDR`);
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > max ||
    (prefixText !== undefined && !/^\d+$/.test(prefixText))
  ) {
    throw new Error(`"${value}" has an invalid prefix length`);
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Builds a matcher; IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match their IPv4 form. */
export function createIpMatcher(cidrs: readonly string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const { address, prefix, family } = parseCidr(cidr);
    list.addSubnet(address, prefix, family);
  }
  return (ip: string) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    const candidate = mapped?.[1] ?? ip;
    const version = isIP(candidate);
    if (version === 0) return false;
    return list.check(candidate, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * What a per-IP rate limit counts: an IPv4 address itself (IPv4-mapped IPv6
 * as its IPv4 form), an IPv6 address by its /64. A /64 is the smallest block
 * a site is given, and one host may pick any address in it, so counting whole
 * IPv6 addresses would give every client 2^64 fresh counters (the default of
 * @fastify/rate-limit's own key, which Gatehouse's counters do not go through).
 */
export function limitKeyOfIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    const address = new Address6(ip);
    if (address.isMapped4()) return address.to4().correctForm();
    return new Address6(`${address.correctForm()}/64`).startAddress().correctForm();
  } catch {
    return ip;
  }
}
