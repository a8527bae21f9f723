/** pino JSON logs (stdout → journald), snake_case keys, with key-name redaction at any depth. */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { redactDeep } from './redact.js';

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
      serializers: { err: pino.stdSerializers.err },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
