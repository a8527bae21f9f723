/** The orchestrator's handle on the load-generator process: fork it, send jobs, await results. */
import { fork, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type {
  Job,
  JobReply,
  WindowEvent,
  RunResult,
  SoakStats,
  KeepAliveJob,
  PlainKeepAliveJob,
  NewConnectionJob,
  BulkJob,
  BurstJob,
  IdleOpenJob,
  SoakStartJob,
} from '../load/jobs.js';
import { stopChild } from './proc.js';

export class LoadClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Called (synchronously, on the IPC message) when a measured window opens or closes. */
  onWindow: ((phase: 'window-start' | 'window-end') => void) | null = null;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: JobReply | WindowEvent) => {
      if ('event' in m) {
        this.onWindow?.(m.event);
        return;
      }
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new Error(`load generator: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`load generator exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  static async start(logFile: string): Promise<LoadClient> {
    const fd = openSync(logFile, 'a');
    const child = fork(fileURLToPath(new URL('../load/worker.js', import.meta.url)), [], {
      stdio: ['ignore', fd, fd, 'ipc'],
      execArgv: [],
    });
    closeSync(fd);
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`load generator exited at start (${code}); see ${logFile}`)));
    });
    return new LoadClient(child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private send<T>(job: Job): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, job });
    });
  }

  keepalive(job: Omit<KeepAliveJob, 'kind'>): Promise<RunResult> {
    return this.send({ kind: 'keepalive', ...job });
  }
  plainKeepalive(job: Omit<PlainKeepAliveJob, 'kind'>): Promise<RunResult> {
    return this.send({ kind: 'plain-keepalive', ...job });
  }
  newconn(job: Omit<NewConnectionJob, 'kind'>): Promise<RunResult> {
    return this.send({ kind: 'newconn', ...job });
  }
  bulk(job: Omit<BulkJob, 'kind'>): Promise<RunResult> {
    return this.send({ kind: 'bulk', ...job });
  }
  burst(job: Omit<BurstJob, 'kind'>): Promise<RunResult> {
    return this.send({ kind: 'burst', ...job });
  }
  idleOpen(job: Omit<IdleOpenJob, 'kind'>): Promise<RunResult> {
    return this.send({ kind: 'idle-open', ...job });
  }
  idleClose(): Promise<RunResult> {
    return this.send({ kind: 'idle-close' });
  }
  soakStart(job: Omit<SoakStartJob, 'kind'>): Promise<unknown> {
    return this.send({ kind: 'soak-start', ...job });
  }
  soakStats(): Promise<SoakStats> {
    return this.send({ kind: 'soak-stats' });
  }
  soakStop(): Promise<SoakStats> {
    return this.send({ kind: 'soak-stop' });
  }

  async stop(): Promise<void> {
    this.child.disconnect();
    await stopChild(this.child, 2_000);
  }
}
