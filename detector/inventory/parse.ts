/**
 * Inventory files, without I/O: the JSON `aws ec2 describe-instances
 * --output json` prints, or a list of instances with their private
 * addresses, optionally dated (an exported address history):
 *
 *   {"Reservations": [{"Instances": [{"InstanceId": "i-…", "PrivateIpAddress": "10.20.1.10", "LaunchTime": "…",
 *       "NetworkInterfaces": [{"PrivateIpAddresses": [{"PrivateIpAddress": "…"}], "Ipv6Addresses": [{"Ipv6Address": "…"}]}]}]}]}
 *   [{"instanceId": "i-…", "privateIps": ["10.20.1.10", "fd12::10"], "firstSeen": "…", "lastSeen": "…"}]
 *
 * Entries that cannot be read (no instance id, an address that is not one)
 * are rejected one by one with the reason; the rest is kept.
 */
import { canonicalIp } from '../../common/cidr/ip.js';
import type { ListedInstance } from './history.js';

export interface InventoryRead {
  instances: ListedInstance[];
  /** Entries left out, with where and why. */
  rejected: string[];
}

export const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

export function parseInventoryText(text: string): InventoryRead | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` };
  }
  if (Array.isArray(value)) return readList(value);
  if (isObject(value) && Array.isArray(value.Reservations)) return readReservations(value.Reservations);
  return {
    error:
      'expected the output of `aws ec2 describe-instances --output json` (an object with Reservations) or a list of {"instanceId", "privateIps"}',
  };
}

function readReservations(reservations: unknown[]): InventoryRead {
  const out: InventoryRead = { instances: [], rejected: [] };
  reservations.forEach((r, i) => {
    const instances = isObject(r) ? r.Instances : undefined;
    if (!Array.isArray(instances)) {
      out.rejected.push(`Reservations[${i}]: no Instances list`);
      return;
    }
    instances.forEach((inst, j) => {
      const read = describedInstance(inst);
      if ('error' in read) out.rejected.push(`Reservations[${i}].Instances[${j}]: ${read.error}`);
      else if (read.addresses.length > 0) out.instances.push(read);
    });
  });
  return out;
}

/**
 * One instance as DescribeInstances describes it (the CLI's JSON or the SDK's object: LaunchTime
 * a string or a Date). An instance without private addresses (terminated) lists none.
 */
export function describedInstance(inst: unknown): ListedInstance | { error: string } {
  if (!isObject(inst)) return { error: 'not an object' };
  const id = inst.InstanceId;
  if (typeof id !== 'string' || !INSTANCE_ID.test(id)) return { error: `InstanceId ${JSON.stringify(id)} is not an instance id` };
  const texts: unknown[] = [inst.PrivateIpAddress];
  for (const ni of Array.isArray(inst.NetworkInterfaces) ? inst.NetworkInterfaces : []) {
    if (!isObject(ni)) continue;
    texts.push(ni.PrivateIpAddress);
    for (const p of Array.isArray(ni.PrivateIpAddresses) ? ni.PrivateIpAddresses : []) if (isObject(p)) texts.push(p.PrivateIpAddress);
    for (const p of Array.isArray(ni.Ipv6Addresses) ? ni.Ipv6Addresses : []) if (isObject(p)) texts.push(p.Ipv6Address);
  }
  const addresses = new Set<string>();
  for (const t of texts) {
    if (t === undefined || t === null || t === '') continue;
    const ip = typeof t === 'string' ? canonicalIp(t) : null;
    if (ip === null) return { error: `${id}: ${JSON.stringify(t)} is not an IP address` };
    addresses.add(ip);
  }
  const launch = inst.LaunchTime;
  const launchMs = launch instanceof Date ? launch.getTime() : typeof launch === 'string' ? Date.parse(launch) : NaN;
  return { instanceId: id, addresses: [...addresses], sinceMs: Number.isFinite(launchMs) ? launchMs : null, untilMs: null };
}

function readList(list: unknown[]): InventoryRead {
  const out: InventoryRead = { instances: [], rejected: [] };
  list.forEach((e, i) => {
    const read = listEntry(e);
    if ('error' in read) out.rejected.push(`[${i}]: ${read.error}`);
    else out.instances.push(read);
  });
  return out;
}

function listEntry(e: unknown): ListedInstance | { error: string } {
  if (!isObject(e)) return { error: 'expected {"instanceId": "i-…", "privateIps": [addresses]}' };
  const id = e.instanceId;
  if (typeof id !== 'string' || !INSTANCE_ID.test(id)) return { error: `instanceId ${JSON.stringify(id)} is not an instance id` };
  if (!Array.isArray(e.privateIps) || e.privateIps.length === 0)
    return { error: `${id}: privateIps must be a non-empty list of addresses` };
  const addresses = new Set<string>();
  for (const t of e.privateIps) {
    const ip = typeof t === 'string' ? canonicalIp(t) : null;
    if (ip === null) return { error: `${id}: ${JSON.stringify(t)} is not an IP address` };
    addresses.add(ip);
  }
  const time = (field: 'firstSeen' | 'lastSeen'): number | null | { error: string } => {
    const v = e[field];
    if (v === undefined || v === null) return null;
    const ms = typeof v === 'string' ? Date.parse(v) : NaN;
    return Number.isFinite(ms) ? ms : { error: `${id}: ${field} ${JSON.stringify(v)} is not an ISO 8601 time` };
  };
  const since = time('firstSeen');
  const until = time('lastSeen');
  if (isObject(since)) return since;
  if (isObject(until)) return until;
  if (since !== null && until !== null && until < since) return { error: `${id}: lastSeen is before firstSeen` };
  return { instanceId: id, addresses: [...addresses], sinceMs: since, untilMs: until };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
