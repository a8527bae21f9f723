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
