/** Runs `promtool check metrics` on an exposition text. Shared by the admin and e2e tests. */
import { spawn } from 'node:child_process';

export interface PromtoolResult {
  code: number | null;
  output: string;
}

export const PROMTOOL_MISSING = 'promtool not found: install the Debian package prometheus (CI installs it)';

export function promtoolCheckMetrics(text: string): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(PROMTOOL_MISSING) : err));
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.on('error', () => undefined); // promtool may exit before reading everything; its exit code tells
    child.stdin.end(text);
  });
}
