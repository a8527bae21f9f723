/** Log levels, from the most to the least severe (no dependencies: the CLI reads it before loading anything else). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];
