/**
 * pino JSON logs (stdout → journald), snake_case keys, with key-name
 * redaction at any depth: every line's own fields and every child logger's
 * bound fields go through the same walk (redact.ts). pino's own `redact`
 * paths are not used: they name fixed positions, and the guarantee here is
 * "any key named like a secret, at any depth, errors included" (docs/decisions/0013).
 */
import { pino, type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { redactDeep } from './redact.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: LevelWithSilent;
  name: string;
  /** Where lines go; default stdout. Tests pass a sink that parses the lines. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const logger = pino(
    {
      name: opts.name,
      level: opts.level,
      base: { pid: undefined, hostname: undefined },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: {
        level: (label) => ({ level: label }),
        // Every line's own fields, at any depth; errors become plain, redacted objects.
        log: (obj) => redactDeep(obj) as Record<string, unknown>,
      },
      // The formatter above already made errors plain objects (type, message, stack, …): pino's own
      // err serializer would name them "Object".
      serializers: { err: (v: unknown) => v },
    },
    opts.destination ?? bufferedStdout(),
  );
  return redactingChildren(logger);
}

/**
 * Fields bound with child() skip the log formatter (pino writes them once,
 * when the child is made): they are walked here instead. Children inherit
 * this child() from the root, so grandchildren are covered too.
 */
function redactingChildren(root: Logger): Logger {
  type Child = (this: Logger, bindings: Bindings, options?: ChildLoggerOptions) => Logger;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with each logger's own `this` below
  const child = root.child as unknown as Child;
  const redacting: Child = function (this: Logger, bindings, options) {
    return child.call(this, redactDeep(bindings) as Bindings, options);
  };
  root.child = redacting as unknown as Logger['child'];
  return root;
}

/**
 * stdout for journald, written in batches: one write(2) per log line was the
 * largest syscall cost of short tunnels. Lines wait at most FLUSH_MS (or
 * until 16 KiB are buffered); pino flushes what is left on exit.
 */
const FLUSH_MS = 250;
function bufferedStdout(): DestinationStream {
  const dest = pino.destination({ fd: 1, sync: false, minLength: 8 * 1024 });
  const timer = setInterval(() => {
    try {
      dest.flush();
    } catch {
      // a flush while a write is in flight is retried at the next tick
    }
  }, FLUSH_MS);
  timer.unref();
  return dest;
}
