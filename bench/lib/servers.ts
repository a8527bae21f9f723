/** Handles on the fake AWS server and the telemetry receiver, each forked as its own process. */
import { fork, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stopChild } from './proc.js';

type Msg = { kind: string } & Record<string, unknown>;

class ForkedServer {
  protected constructor(readonly child: ChildProcess) {}

  protected static async forkReady(script: string, args: string[], logFile: string): Promise<{ child: ChildProcess; ready: Msg }> {
    const fd = openSync(logFile, 'a');
    const child = fork(fileURLToPath(new URL(`../servers/${script}`, import.meta.url)), args, {
      stdio: ['ignore', fd, fd, 'ipc'],
      execArgv: [],
    });
    closeSync(fd);
    const ready = await new Promise<Msg>((resolve, reject) => {
      child.once('message', (m: Msg) => resolve(m));
      child.once('exit', (code) => reject(new Error(`${script} exited at start (${code}); see ${logFile}`)));
    });
    return { child, ready };
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  protected ask<T extends Msg>(kind: string, answer: string): Promise<T> {
    return new Promise((resolve) => {
      const on = (m: Msg): void => {
        if (m.kind !== answer) return;
        this.child.off('message', on);
        resolve(m as T);
      };
      this.child.on('message', on);
      this.child.send({ kind });
    });
  }

  async stop(): Promise<void> {
    if (this.child.connected) this.child.disconnect();
    await stopChild(this.child, 2_000);
  }
}

export class FakeAws extends ForkedServer {
  private constructor(
    child: ChildProcess,
    readonly httpsPort: number,
    readonly holdPort: number,
    /** The same answers over plain HTTP (absolute-form rows). */
    readonly httpPort: number,
  ) {
    super(child);
  }

  static async start(certFile: string, keyFile: string, logFile: string): Promise<FakeAws> {
    const { child, ready } = await ForkedServer.forkReady('fake-aws.js', [certFile, keyFile], logFile);
    return new FakeAws(child, Number(ready.httpsPort), Number(ready.holdPort), Number(ready.httpPort));
  }

  stats(): Promise<{ held: number; requests: number; tlsConnections: number }> {
    return this.ask<{ kind: string; held: number; requests: number; tlsConnections: number }>('stats', 'stats');
  }

  async closeHeld(): Promise<void> {
    await this.ask('close-held', 'closed-held');
  }
}

export class Receiver extends ForkedServer {
  private constructor(
    child: ChildProcess,
    readonly port: number,
  ) {
    super(child);
  }

  static async start(logFile: string): Promise<Receiver> {
    const { child, ready } = await ForkedServer.forkReady('receiver.js', [], logFile);
    return new Receiver(child, Number(ready.port));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/telemetry`;
  }

  stats(): Promise<{ batches: number; bytes: number; signed: number }> {
    return this.ask<{ kind: string; batches: number; bytes: number; signed: number }>('stats', 'stats');
  }
}
