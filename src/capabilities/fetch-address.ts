import { promises as dnsPromises, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';

import { Agent } from 'undici';

import { CapabilityRefusal } from './capability.ts';

/**
 * The address checks behind the `fetch` capability: which addresses a script
 * may reach, judged on the address a name resolves to, never on the name.
 */

export type AddressKind =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'cloud metadata'
  | 'unspecified'
  | 'shared (CGNAT)'
  | 'multicast'
  | 'reserved';

type Range = readonly [prefix: string, bits: number, kind: AddressKind];

// First match wins, so single addresses come before the ranges holding them.
const V4_RANGES: readonly Range[] = [
  ['169.254.169.254', 32, 'cloud metadata'], // AWS, GCP, Azure, OpenStack
  ['100.100.100.200', 32, 'cloud metadata'], // Alibaba Cloud
  ['168.63.129.16', 32, 'cloud metadata'], // Azure wire server: a public-looking address
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared (CGNAT)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF assignments (includes Oracle Cloud's metadata)
  ['192.0.2.0', 24, 'reserved'],
  ['192.88.99.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'reserved'],
  ['203.0.113.0', 24, 'reserved'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'], // includes 255.255.255.255, the broadcast address
];

const V6_RANGES: readonly Range[] = [
  ['fd00:ec2::254', 128, 'cloud metadata'], // AWS over IPv6
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'reserved'], // deprecated IPv4-compatible addresses
  ['64:ff9b:1::', 48, 'private'], // local-use NAT64
  ['100::', 64, 'reserved'], // discard-only
  ['2001::', 23, 'reserved'], // IETF assignments, Teredo (embeds an IPv4 address)
  ['2001:db8::', 32, 'reserved'],
  ['fc00::', 7, 'private'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'private'], // deprecated site-local
  ['ff00::', 8, 'multicast'],
];

// IPv6 prefixes that carry an IPv4 address: traffic to them reaches that IPv4
// address (dual-stack sockets, NAT64/DNS64 gateways, 6to4), so it is judged.
const V4_CARRIERS: readonly [prefix: string, bits: number, offset: number][] = [
  ['::ffff:0:0', 96, 12], // IPv4-mapped
  ['64:ff9b::', 96, 12], // NAT64
  ['2002::', 16, 2], // 6to4
];

function parseV4(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

/** IPv6 text (already valid per `net.isIP`) to its 16 bytes. */
function parseV6(text: string): Uint8Array {
  let s = text.split('%')[0] ?? '';
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const [a = 0, b = 0, c = 0, d = 0] = parseV4(s.slice(lastColon + 1));
    s = `${s.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const bytes = new Uint8Array(16);
  [...headGroups, ...zeros, ...tailGroups].forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  return bytes;
}

/** The bytes of an IP literal (4 or 16), or undefined for anything else. */
export function ipBytes(text: string): Uint8Array | undefined {
  const family = isIP(text);
  if (family === 4) return parseV4(text);
  if (family === 6) return parseV6(text);
  return undefined;
}

function inRange(bytes: Uint8Array, prefix: Uint8Array, bits: number): boolean {
  for (let bit = 0; bit < bits; bit += 8) {
    const mask = bits - bit >= 8 ? 0xff : (0xff << (8 - (bits - bit))) & 0xff;
    if (((bytes[bit / 8] ?? 0) & mask) !== ((prefix[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

const compile = (ranges: readonly Range[]) =>
  ranges.map(([prefix, bits, kind]) => ({
    prefix: ipBytes(prefix) ?? new Uint8Array(),
    bits,
    kind,
  }));
const V4 = compile(V4_RANGES);
const V6 = compile(V6_RANGES);
const CARRIERS = V4_CARRIERS.map(([prefix, bits, offset]) => ({
  prefix: parseV6(prefix),
  bits,
  offset,
}));

/** The IPv4 address an IPv6 address stands for, if it carries one. */
function carriedV4(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length !== 16) return undefined;
  const carrier = CARRIERS.find((c) => inRange(bytes, c.prefix, c.bits));
  return carrier && bytes.slice(carrier.offset, carrier.offset + 4);
}

function kindOf(bytes: Uint8Array): AddressKind {
  const v4 = carriedV4(bytes);
  if (v4 !== undefined) return kindOf(v4);
  const table = bytes.length === 4 ? V4 : V6;
  return table.find((r) => inRange(bytes, r.prefix, r.bits))?.kind ?? 'public';
}

/** What kind of address an IP literal is; throws for anything that is not one. */
export function classifyAddress(address: string): AddressKind {
  const bytes = ipBytes(address);
  if (bytes === undefined) throw new TypeError(`'${address}' is not an IP address`);
  return kindOf(bytes);
}

const MAPPED = parseV6('::ffff:0:0');

/** One spelling per address, so that `::ffff:127.0.0.1` and `127.0.0.1` compare equal. */
export function canonicalIp(address: string): string | undefined {
  const bytes = ipBytes(address);
  if (bytes === undefined) return undefined;
  if (bytes.length === 4) return bytes.join('.');
  if (inRange(bytes, MAPPED, 96)) return bytes.slice(12).join('.');
  const groups = Array.from(
    { length: 8 },
    (_, i) => ((bytes[i * 2] ?? 0) << 8) | (bytes[i * 2 + 1] ?? 0),
  );
  return groups.map((g) => g.toString(16)).join(':');
}

/** An `allowPrivate` entry: a host name or an IP literal, with or without a port. */
export interface PrivateEntry {
  readonly name: string | undefined;
  readonly ip: string | undefined;
  readonly port: number | undefined;
}

const ENTRY = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/\s]+))(?::(\d{1,5}))?$/;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/;

/** Parses `host`, `host:port`, `1.2.3.4[:port]`, `::1` or `[::1]:port`; undefined if invalid. */
export function parsePrivateEntry(text: string): PrivateEntry | undefined {
  if (isIP(text) === 6) return { name: undefined, ip: canonicalIp(text), port: undefined };
  const match = ENTRY.exec(text);
  if (match === null) return undefined;
  const [, bracketed, plain = '', portText] = match;
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && (port < 1 || port > 65_535)) return undefined;
  if (bracketed !== undefined) {
    return isIP(bracketed) === 6
      ? { name: undefined, ip: canonicalIp(bracketed), port }
      : undefined;
  }
  if (isIP(plain) === 4) return { name: undefined, ip: canonicalIp(plain), port };
  const name = plain.toLowerCase();
  return HOST_NAME.test(name) && !/^[\d.]+$/.test(name) ? { name, ip: undefined, port } : undefined;
}

/**
 * Whether the policy names this non-public address. An IP entry names exactly
 * that address; a name entry names the addresses that name resolves to, except
 * cloud metadata, which only an IP entry can open (so a DNS change cannot point
 * a named internal host at the metadata service).
 */
function isNamed(
  entries: readonly PrivateEntry[],
  host: string,
  port: number,
  address: string,
  kind: AddressKind,
) {
  const ip = canonicalIp(address);
  return entries.some(
    (e) =>
      (e.port === undefined || e.port === port) &&
      ((e.ip !== undefined && e.ip === ip) || (e.name === host && kind !== 'cloud metadata')),
  );
}

/** Rejects when the signal aborts: `dns.lookup` itself cannot be cancelled. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function resolve(host: string, signal: AbortSignal): Promise<LookupAddress[]> {
  const family = isIP(host);
  if (family !== 0) return [{ address: host, family }];
  try {
    return await abortable(dnsPromises.lookup(host, { all: true }), signal);
  } catch (err) {
    if (signal.aborted) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(`fetch failed: cannot resolve host '${host}' (${code})`);
  }
}

/** The URL's host as `dns.lookup` and `net.connect` take it: IPv6 without brackets. */
export function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Resolves the URL's host once and judges every address it resolves to. The
 * caller must connect only to the addresses returned: resolving again would
 * let a DNS server answer differently the second time (DNS rebinding).
 */
export async function resolveChecked(
  url: URL,
  allowPrivate: readonly PrivateEntry[],
  signal: AbortSignal,
): Promise<LookupAddress[]> {
  const host = bareHost(url);
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  const addresses = await resolve(host, signal);
  if (addresses.length === 0) throw new Error(`fetch failed: host '${host}' has no address`);
  for (const { address } of addresses) {
    const kind = classifyAddress(address);
    if (kind !== 'public' && !isNamed(allowPrivate, host, port, address, kind)) {
      const what = address === host ? host : `${host} resolves to ${address}, which`;
      throw new CapabilityRefusal(
        `${what} is a ${kind} address, and '${host}:${port}' is not named in the policy's allowPrivate`,
      );
    }
  }
  return addresses;
}

/**
 * An agent that can reach only the addresses already checked: its lookup
 * answers from them instead of asking DNS again, so a rebinding DNS server
 * gets no second answer. The URL keeps the name, so the Host header and TLS
 * (SNI and certificate check) still use the name. An IP-literal host is never
 * looked up at all. Limitation: one agent per hop, so no keep-alive between
 * calls; every call opens a new connection (and TLS handshake).
 */
export function pinnedAgent(hostname: string, addresses: readonly LookupAddress[]): Agent {
  const lookup: LookupFunction = (name, options, callback) => {
    const family =
      options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
    const usable = addresses.filter(
      (a) => name === hostname && (family === 0 || a.family === family),
    );
    const first = usable[0];
    if (first === undefined)
      callback(
        Object.assign(new Error(`no checked address for ${name}`), { code: 'ENOTFOUND' }),
        '',
      );
    else if (options.all === true) callback(null, usable);
    else callback(null, first.address, first.family);
  };
  return new Agent({ connect: { lookup } });
}
