// state.json: the spool's indexes, and the atomic file writes the spool uses.
//
//   seq:   0 … 96  97  98  99 100 101 102 103 104 105
//          done…   ▲ done  ▲  ▲   ▲ skip  ▲   ▲       ▲
//                  │       │  └───┴───────┴───┘       │
//          inFlight┘       │   never taken: pending   writeIndex
//          (taken, not     readIndex
//           finished yet)
//
// Every seq below readIndex is finished (acked, dropped or dead-lettered)
// unless it is listed in inFlight; every seq from readIndex up is pending
// unless it is listed in skipped. A record only counts if the seq AND the id
// match, so a stale state file can never claim an unrelated batch.
//
// Contract: the file is replaced atomically (tmp file, fsync, rename, fsync
// dir), so a reader sees the old state or the new one, never a mix. A state
// that is older than the segments is safe: it can only under-count what was
// finished, and that means a batch is sent again (at-least-once), never lost.

import { constants } from 'node:fs';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const STATE_FILE = 'state.json';

export interface InFlightMark {
  seq: number;
  id: string;
  /** Failed send attempts so far; kept so backoff survives a restart. */
  attempts: number;
}

export interface SpoolState {
  version: 1;
  writeIndex: number;
  readIndex: number;
  inFlight: InFlightMark[];
  skipped: number[];
}

export const EMPTY_STATE: SpoolState = { version: 1, writeIndex: 0, readIndex: 0, inFlight: [], skipped: [] };

export type StateLoad = { kind: 'found'; state: SpoolState } | { kind: 'missing' } | { kind: 'corrupt'; reason: string };

export async function loadState(dir: string): Promise<StateLoad> {
  let text: string;
  try {
    text = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return { kind: 'missing' };
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'corrupt', reason: 'state.json is not valid JSON' };
  }
  const problem = stateProblem(parsed);
  return problem === null ? { kind: 'found', state: parsed as SpoolState } : { kind: 'corrupt', reason: `state.json: ${problem}` };
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function stateProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null) return 'not an object';
  const s = v as Record<string, unknown>;
  if (s['version'] !== 1) return 'unknown version';
  if (!isIndex(s['writeIndex']) || !isIndex(s['readIndex'])) return 'bad writeIndex/readIndex';
  if (s['readIndex'] > s['writeIndex']) return 'readIndex beyond writeIndex';
  if (!Array.isArray(s['inFlight']) || !Array.isArray(s['skipped'])) return 'bad inFlight/skipped';
  for (const m of s['inFlight'] as unknown[]) {
    if (typeof m !== 'object' || m === null) return 'bad inFlight entry';
    const { seq, id, attempts } = m as Record<string, unknown>;
    if (!isIndex(seq) || typeof id !== 'string' || !isIndex(attempts)) return 'bad inFlight entry';
  }
  if (!(s['skipped'] as unknown[]).every(isIndex)) return 'bad skipped entry';
  return null;
}

export async function writeState(dir: string, state: SpoolState): Promise<void> {
  await writeFileAtomically(dir, STATE_FILE, Buffer.from(JSON.stringify(state)));
}

/** Write to `<name>.tmp`, fsync, rename over `<name>`, fsync the directory. */
export async function writeFileAtomically(dir: string, name: string, data: Buffer): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

/** Makes creations, renames and unlinks in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** mkdir -p, then fsync the parent of every directory it created, so the spool's own entry survives power loss. */
export async function makeDirDurably(dir: string): Promise<void> {
  const firstCreated = await mkdir(dir, { recursive: true });
  if (firstCreated === undefined) return;
  for (let d = dir; ; d = dirname(d)) {
    await fsyncDir(dirname(d));
    if (d === firstCreated || dirname(d) === d) return;
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
