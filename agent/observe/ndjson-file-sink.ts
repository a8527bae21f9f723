/**
 * The `telemetry.file` sink: one JSON record per line, appended. The file is
 * opened per write so that logrotate's move-and-create just works.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TelemetryRecord } from '../../protocol/telemetry.js';
import type { RecordSink } from './record-sink.js';

export class NdjsonFileSink implements RecordSink {
  readonly name = 'file';
  private dirReady = false;

  constructor(private readonly path: string) {}

  async write(records: readonly TelemetryRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (!this.dirReady) {
      await mkdir(dirname(this.path), { recursive: true });
      this.dirReady = true;
    }
    let text = '';
    for (const r of records) text += `${JSON.stringify(r)}\n`;
    await appendFile(this.path, text, { mode: 0o640 });
  }
}
