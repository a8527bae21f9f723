/** Runs promtool (Debian package prometheus): `check metrics` on an exposition text, or any subcommand. Shared by the admin, e2e and observability tests. */
import { spawn } from 'node:child_process';

export interface PromtoolResult {
  code: number | null;
  output: string;
}

export const PROMTOOL_MISSING = 'promtool not found: install the Debian package prometheus (CI installs it)';

/** `promtool ARGS…` with `stdin` written to it; stdout and stderr together in `output`. */
export function runPromtool(args: string[], stdin = '', cwd?: string): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(PROMTOOL_MISSING) : err));
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.on('error', () => undefined); // promtool may exit before reading everything; its exit code tells
    child.stdin.end(stdin);
  });
}

export function promtoolCheckMetrics(text: string): Promise<PromtoolResult> {
  return runPromtool(['check', 'metrics'], text);
}
