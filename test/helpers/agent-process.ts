/**
 * The agent daemon as a child process (`node dist/cli/main.js agent --config F`), for end-to-end
 * tests: its JSON log lines parsed as they come, stderr kept, and promises for its `started` line
 * (the ports it bound) and its exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI the daemon runs from. */
export const AGENT_BIN = join(fileURLToPath(new URL('../../', import.meta.url)), 'dist/cli/main.js');

export interface AgentProcess {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  /** The ports of its `started` line; rejects when it exits before that line. */
  started: Promise<{ proxyPort: number; adminPort: number }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL unless it has exited already; resolves once it has. */
  kill(): Promise<void>;
}

export function spawnAgent(configPath: string): AgentProcess {
  if (!existsSync(AGENT_BIN)) throw new Error(`${AGENT_BIN} is missing: run "npm run build" first (npm test does)`);
  const child = spawn(process.execPath, [AGENT_BIN, 'agent', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let partial = '';
  let onStarted: (v: { proxyPort: number; adminPort: number }) => void = () => undefined;
  const started = new Promise<{ proxyPort: number; adminPort: number }>((resolve, reject) => {
    onStarted = resolve;
    child.once('exit', (code, signal) => reject(new Error(`agent exited (${code ?? signal}) before it started: ${stderr}`)));
  });
  started.catch(() => undefined);
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.on('data', (c: Buffer) => {
    const parts = (partial + c.toString()).split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      if (!p.trim()) continue;
      const line = JSON.parse(p) as Record<string, unknown>;
      lines.push(line);
      if (line.event === 'started') onStarted({ proxyPort: line.proxy_port as number, adminPort: line.admin_port as number });
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return { child, lines, stderr: () => stderr, started, exited, kill };
}
