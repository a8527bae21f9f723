/**
 * Inventory files read from disk, without the EC2 SDK: what check-config,
 * replay and the daemon's start share.
 */
import { readTextBounded } from '../../common/io/bounded-read.js';
import { MAX_TEXT_BYTES } from '../../common/json/text-limits.js';
import { AddressHistory } from './history.js';
import { parseInventoryText, type InventoryRead } from './parse.js';

export const fileSource = (path: string) => `file:${path}`;

/** One inventory file read and parsed; throws with the reason (not found, too large, not an inventory). */
export async function readInventoryFile(path: string): Promise<InventoryRead> {
  const read = parseInventoryText(await readTextBounded(path, MAX_TEXT_BYTES));
  if ('error' in read) throw new Error(read.error);
  return read;
}

/** The history of a set of files read once, as `replay --inventory` and the daemon's start read them. */
export async function historyFromFiles(
  paths: readonly string[],
  atMs: number,
): Promise<{ history: AddressHistory; rejected: { path: string; reason: string }[] }> {
  let history = AddressHistory.empty();
  const rejected: { path: string; reason: string }[] = [];
  for (const path of paths) {
    let read: InventoryRead;
    try {
      read = await readInventoryFile(path);
    } catch (err) {
      throw new Error(`inventory file ${path}: ${(err as Error).message}`, { cause: err });
    }
    history = history.withSource(fileSource(path), read.instances, atMs);
    for (const reason of read.rejected) rejected.push({ path, reason });
  }
  return { history, rejected };
}
