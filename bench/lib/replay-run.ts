/** `egress-witness replay` as a child process, as the detector benches run it: its stderr (the summary) and wall time. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

/**
 * Writes a detector config with one gateway (gw-bench, 203.0.113.0/28) into `dir` and runs replay
 * over it with `args` (the inputs); resolves with replay's stderr once it exited 0.
 */
export async function runReplay(dir: string, name: string, args: readonly string[]): Promise<{ stderr: string; wallSeconds: number }> {
  const config = join(dir, `${name}-detector.yaml`);
  writeFileSync(
    config,
    'gateways:\n  - id: gw-bench\n    egress_cidrs: [203.0.113.0/28]\n    secret_file: /nonexistent/replay-needs-no-secret\n',
  );
  const started = performance.now();
  const stderr = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'replay', '--config', config, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(err) : reject(new Error(`replay exited ${code}: ${err.slice(-300)}`))));
  });
  return { stderr, wallSeconds: (performance.now() - started) / 1000 };
}

/** One replay run: its summary's figures (the summary pattern's groups) and wall time. */
export interface ReplayRun {
  figures: RegExpExecArray;
  wallSeconds: number;
}

/**
 * `runReplay` `runs` times over the same inputs, one after another, each summary read with
 * `summary`; reports the run whose rate (group `rateGroup`) is the median. On a shared machine one run can land 20 % either side of the next; the median of three
 * does not depend on one unlucky run, and `rates` (for the note) gives them all.
 */
export async function medianReplay(
  dir: string,
  name: string,
  args: readonly string[],
  runs: number,
  summary: RegExp,
  rateGroup: number,
): Promise<{ median: ReplayRun; rates: string }> {
  const all: ReplayRun[] = [];
  for (let i = 0; i < runs; i++) {
    const { stderr, wallSeconds } = await runReplay(dir, name, args);
    const figures = summary.exec(stderr);
    if (!figures) throw new Error(`replay summary not understood: ${stderr.slice(-300)}`);
    all.push({ figures, wallSeconds });
  }
  const rate = (r: ReplayRun) => Number(r.figures[rateGroup]);
  const sorted = [...all].sort((a, b) => rate(a) - rate(b));
  const median = sorted[Math.floor((sorted.length - 1) / 2)] as ReplayRun;
  const rates = runs === 1 ? 'one run' : `median of ${runs} runs: ${all.map((r) => Math.round(rate(r))).join(' / ')}`;
  return { median, rates };
}
