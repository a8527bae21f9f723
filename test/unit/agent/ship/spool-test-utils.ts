// Shared helpers for the spool tests: real directories under os.tmpdir().

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, type SpoolEntry, type SpoolEvent, type SpoolOptions } from '../../../../agent/ship/spool.js';

const made: string[] = [];

export async function makeTempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ew-spool-'));
  made.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

export function batchId(i: number, prefix = 'batch'): string {
  return `${prefix}-${String(i).padStart(6, '0')}`;
}

/** A payload that names its batch, so a mix-up cannot go unnoticed. */
export function payloadFor(id: string, size = 64): Buffer {
  const out = Buffer.alloc(size, 0x2e);
  out.write(id, 0, 'ascii');
  return out;
}

export interface OpenedSpool {
  spool: Spool;
  events: SpoolEvent[];
}

export async function openSpool(dir: string, opts: Partial<SpoolOptions> = {}): Promise<OpenedSpool> {
  const events: SpoolEvent[] = [];
  const spool = await Spool.open({ dir, maxBytes: 64 * 1024 * 1024, ...opts, onEvent: (e) => events.push(e) });
  return { spool, events };
}

export function takeAll(spool: Spool): SpoolEntry[] {
  const out: SpoolEntry[] = [];
  for (let e = spool.take(); e !== null; e = spool.take()) out.push(e);
  return out;
}

export async function appendIds(spool: Spool, ids: readonly string[], size = 64): Promise<void> {
  for (const id of ids) await spool.append(id, payloadFor(id, size));
}

export async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /^segment-\d+\.log$/.test(n)).sort();
}
