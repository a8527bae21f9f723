/**
 * pino JSON logs (stdout → journald), snake_case keys, with key-name
 * redaction at any depth: every line's own fields and every child logger's
 * bound fields go through the same walk (redact.ts). pino's own `redact`
 * paths are not used: they name fixed positions, and the guarantee here is
 * "any key named like a secret, at any depth, errors included" (docs/decisions/0013).
 */
import { pino, type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { redactDeep } from './redact.js';
import { isoTime } from '../time/iso-time.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: LevelWithSilent;
  name: string;
  /** Where lines go; default stdout. Tests pass a sink that parses the lines. */
  destination?: DestinationStream;
}

/** pino's `,"time":"<ISO 8601>"` field, the same text as its isoTime, from the per-second table. */
const timeField = (): string => `,"time":"${isoTime(Date.now())}"`;

export function createLogger(opts: LoggerOptions): Logger {
  const logger = pino(
    {
      name: opts.name,
      level: opts.level,
      base: { pid: undefined, hostname: undefined },
      timestamp: timeField,
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

/** A level that writes lines (not `silent`). */
export type LineLevel = Exclude<LevelWithSilent, 'silent'>;

/**
 * Writes lines whose fields the caller has already serialised — a string of
 * `,"key":value` pairs — with the logger's own level label, time, bound fields
 * and message key, to the logger's own stream: the same line as
 * `logger[level](fields, msg)`, in order with its other lines and batched the
 * same way, without pino's object walk or the key-name redaction walk. For
 * lines of fixed, known keys written very often (the canonical decision line);
 * the caller answers for the rest of the contract: no key named like a secret
 * (redact.ts), every value JSON, free text passed through `redactText`.
 * Nothing is written below the logger's level. A logger whose stream wants
 * pino's per-line metadata (multistream), or that has a mixin, a message
 * prefix or a write hook, gets the line through its ordinary method instead.
 */
export type FieldLineWriter = (level: LineLevel, fields: string, msg: string) => void;

type PinoInternals = Record<symbol, unknown>;
// msgPrefixSym is in pino's symbols but not in its types.
const sym = pino.symbols as typeof pino.symbols & { readonly msgPrefixSym: symbol };

export function fieldLineWriter(logger: Logger): FieldLineWriter {
  const l = logger as unknown as PinoInternals;
  const plain = (): boolean => {
    const stream = l[sym.streamSym] as PinoInternals | undefined;
    const hooks = l[sym.hooksSym] as { streamWrite?: unknown } | undefined;
    return (
      stream !== undefined && stream[sym.needsMetadataGsym] !== true && !l[sym.mixinSym] && !l[sym.msgPrefixSym] && !hooks?.streamWrite
    );
  };
  const key = JSON.stringify(l[sym.messageKeySym]);
  return (level, fields, msg) => {
    const num = logger.levels.values[level];
    if (num === undefined || num < logger.levelVal) return;
    if (!plain()) {
      logger[level](JSON.parse(`{${fields.slice(1)}}`) as object, msg);
      return;
    }
    const label = (l[sym.lsCacheSym] as Record<number, string>)[num];
    const time = (l[sym.timeSym] as () => string)();
    const line = `${label}${time}${l[sym.chindingsSym] as string}${fields},${key}:${JSON.stringify(msg)}${l[sym.endSym] as string}`;
    (l[sym.streamSym] as { write(s: string): unknown }).write(line);
  };
}

/**
 * stdout for journald, written in batches: one write(2) per log line was the
 * largest syscall cost of short tunnels. Lines wait at most FLUSH_MS (or
 * until 8 KiB are buffered); pino flushes what is left on exit (it registers
 * the destination itself). Each line is handed over as a Buffer: with strings,
 * sonic-boom measures the whole pending batch (`Buffer.byteLength` of the
 * joined string) on every write, so a batch of n lines cost O(n²) bytes
 * scanned — more than serialising the canonical line.
 */
const FLUSH_MS = 250;
function bufferedStdout(): DestinationStream {
  const sonic = pino.destination({ fd: 1, sync: false, minLength: 8 * 1024, contentMode: 'buffer' });
  const dest = {
    // Looked up at each call: on EPIPE pino replaces the destination's write with a no-op.
    write: (line: string): boolean => sonic.write(Buffer.from(line) as unknown as string),
    flush: (cb?: (err?: Error) => void): void => sonic.flush(cb),
  };
  const timer = setInterval(() => {
    try {
      sonic.flush();
    } catch {
      // a flush while a write is in flight is retried at the next tick
    }
  }, FLUSH_MS);
  timer.unref();
  return dest;
}
