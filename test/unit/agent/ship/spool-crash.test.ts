// SIGKILL in the middle of appends and acks: a child process runs the
// compiled spool (dist/, built by `npm run build`, which `npm test` runs
// first) and reports each append and ack only after its promise resolved.
// Whatever it reported must hold after the kill: every appended batch is
// there, no acknowledged one comes back. An ack the kill interrupted (it may
// be on disk without its report) counts as neither.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { batchId, makeTempDir, openSpool, payloadFor, removeTempDirs, takeAll } from './spool-test-utils.js';

afterEach(removeTempDirs);

const COMPILED_SPOOL = fileURLToPath(new URL('../../../../dist/agent/ship/spool.js', import.meta.url));
const PAYLOAD = 2048;

const CHILD = `
import { Spool } from ${JSON.stringify(pathToFileURL(COMPILED_SPOOL).href)};
const [dir, prefix] = process.argv.slice(2);
const payloadFor = (id) => { const b = Buffer.alloc(${PAYLOAD}, 0x2e); b.write(id, 0, 'ascii'); return b; };
const spool = await Spool.open({ dir, maxBytes: 1 << 30, segmentBytes: 64 * 1024 });
for (let i = 0; ; i++) {
  const id = prefix + '-' + String(i).padStart(6, '0');
  await spool.append(id, payloadFor(id));
  process.stdout.write('appended ' + id + '\\n');
  if (i % 5 === 0) spool.take(); // left in flight
  if (i % 3 === 2) {
    const e = spool.take();
    if (e) {
      process.stdout.write('acking ' + e.id + '\\n');
      await spool.ack(e.id);
      process.stdout.write('acked ' + e.id + '\\n');
    }
  }
}
`;

/** Runs the child until it has reported `appends` appends, then SIGKILLs it. Returns what it reported. */
async function runAndKill(
  script: string,
  dir: string,
  prefix: string,
  appends: number,
): Promise<{ appended: string[]; acking: string[]; acked: string[] }> {
  const child = spawn(process.execPath, [script, dir, prefix], { stdio: ['ignore', 'pipe', 'pipe'] });
  const appended: string[] = [];
  const acking: string[] = [];
  const acked: string[] = [];
  let stderr = '';
  let partial = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const [what, id] = line.split(' ');
      (what === 'acked' ? acked : what === 'acking' ? acking : appended).push(id!);
      if (appended.length >= appends) child.kill('SIGKILL');
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('exit', (c, s) => resolve([c, s])),
  );
  if (signal !== 'SIGKILL') throw new Error(`child exited with ${code} before it was killed: ${stderr}`);
  return { appended, acking, acked };
}

describe('Spool crash safety (child process, SIGKILL)', () => {
  it('keeps every batch whose append resolved and never resurrects one whose ack resolved', async () => {
    if (!existsSync(COMPILED_SPOOL)) throw new Error(`${COMPILED_SPOOL} is missing: run \`npm run build\` (npm test does it first)`);
    const dir = await makeTempDir();
    const script = join(dir, 'child.mjs');
    await writeFile(script, CHILD);
    const spoolDir = join(dir, 'spool');
    const appended: string[] = [];
    const acked = new Set<string>();
    const acking = new Set<string>();
    for (const [round, appends] of [300, 450, 200].entries()) {
      const reported = await runAndKill(script, spoolDir, `round${round}`, appends);
      appended.push(...reported.appended);
      for (const id of reported.acked) acked.add(id);
      for (const id of reported.acking) acking.add(id);
    }

    const { spool, events } = await openSpool(spoolDir, { segmentBytes: 64 * 1024 });
    expect(events.at(-1)).toMatchObject({ kind: 'recovered' });
    const entries = takeAll(spool);
    const present = new Set(entries.map((e) => e.id));
    // Killed between the ack reaching the disk and its report: either answer is right for that one batch.
    const interrupted = new Set([...acking].filter((id) => !acked.has(id)));
    expect(interrupted.size).toBeLessThanOrEqual(3);
    const lost = appended.filter((id) => !acked.has(id) && !interrupted.has(id) && !present.has(id));
    const resurrected = [...acked].filter((id) => present.has(id));
    expect(lost).toEqual([]);
    expect(resurrected).toEqual([]);
    for (const e of entries) expect(e.payload.equals(payloadFor(e.id, PAYLOAD))).toBe(true);
    // FIFO survives the crashes: batches come back in the order they were appended.
    expect(entries.map((e) => e.id)).toEqual([...entries.map((e) => e.id)].sort());
    expect(appended.length).toBeGreaterThanOrEqual(950);
    await spool.append(batchId(1), payloadFor(batchId(1)));
    await spool.close();
  });
});
