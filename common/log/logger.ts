/** pino JSON logs (stdout → journald), snake_case keys, with key-name redaction at any depth. */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { redactDeep, REDACTED } from './redact.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: LevelWithSilent;
  name: string;
  /** Where lines go; default stdout. Tests pass a sink that parses the lines. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level,
      base: { pid: undefined, hostname: undefined },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactDeep(obj) as Record<string, unknown>,
      },
      // The log formatter above redacts every line's own fields at any depth (and turns errors into
      // plain, redacted objects). Fields bound with child() skip formatters, but not serializers:
      serializers: childSerializers(),
    },
    opts.destination ?? bufferedStdout(),
  );
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

/** Keys redacted when bound on a child logger; objects under them are redacted deeply. */
const SECRET_KEYS = [
  'authorization',
  'proxy-authorization',
  'x-amz-security-token',
  'secret',
  'secret_key',
  'secretAccessKey',
  'password',
  'token',
  'session_token',
  'sessionToken',
  'signature',
  'cookie',
];
const DEEP_KEYS = ['headers', 'req', 'res', 'request', 'response', 'config', 'err', 'error'];

function childSerializers(): Record<string, (v: unknown) => unknown> {
  const out: Record<string, (v: unknown) => unknown> = {};
  for (const k of SECRET_KEYS) out[k] = (v) => (v === null || v === undefined ? v : REDACTED);
  for (const k of DEEP_KEYS) out[k] = (v) => redactDeep(v);
  return out;
}
