import type { TelemetryRecord } from '../../protocol/telemetry.js';

/** Where flushed records go (NDJSON file, the shipping spool). Must not throw synchronously. */
export interface RecordSink {
  readonly name: string;
  write(records: readonly TelemetryRecord[]): Promise<void>;
  close?(): Promise<void>;
}
