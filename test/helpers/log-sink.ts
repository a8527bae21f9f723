/** A pino destination that parses each JSON line, so tests assert on objects (pino's own habit). */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../common/log/logger.js';

export interface LogSink {
  logger: Logger;
  lines: Record<string, unknown>[];
  raw: string[];
  find(event: string): Record<string, unknown>[];
}

export function logSink(level: 'info' | 'debug' | 'trace' = 'info'): LogSink {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  let partial = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      partial += chunk.toString('utf8');
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = createLogger({ name: 'test', level, destination: stream });
  return { logger, lines, raw, find: (event) => lines.filter((l) => l.event === event) };
}

export interface TextSink {
  /** The destination to give createLogger. */
  stream: Writable;
  /** Everything written so far, as written. */
  text(): string;
  /** Every complete line so far, parsed. */
  lines(): Record<string, unknown>[];
}

/** A destination that keeps what it is given as text, for tests that build their own logger. */
export function textSink(): TextSink {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return {
    stream,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
