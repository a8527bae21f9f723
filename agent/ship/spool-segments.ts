// The spool's segment files: append-only, rotated by size, deleted when empty.
//
//   segment-000000007.log  [live 1]  ─┐ read with pread on a lazily opened fd
//   segment-000000008.log  [live 3]  ─┘
//   segment-000000009.log  [live 2]  ◀── active: one write + fdatasync per append
//
// Contracts: append() resolves only when its bytes are fdatasync'ed and a new
// file's directory entry is fsync'ed. A failed write is cut off (truncate to
// the size before it) and the file is never appended to again. The caller
// serializes every call except read(); `live` counts are the caller's.

import { closeSync, openSync, readSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { segmentName, type SegmentFile } from './spool-recovery.js';
import { fsyncDir } from './spool-state.js';

export interface Placement {
  segment: number;
  offset: number;
}

export class SegmentFiles {
  private active: { segment: SegmentFile; handle: FileHandle } | null = null;
  private nextNo: number;

  constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    private readonly segments: Map<number, SegmentFile>,
  ) {
    // Appends never go into a recovered file: a fresh segment per open.
    this.nextNo = Math.max(0, ...segments.keys()) + 1;
  }

  /**
   * Writes records in order; a record that would push a non-empty segment
   * past segmentBytes starts the next one (a record larger than segmentBytes
   * gets a segment to itself). One write + fdatasync per segment touched.
   */
  async append(records: readonly Buffer[]): Promise<Placement[]> {
    const placements: Placement[] = [];
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    for (const record of records) {
      const used = (this.active?.segment.size ?? 0) + chunkBytes;
      if (this.active !== null && used > 0 && used + record.length > this.segmentBytes) {
        await this.writeChunk(chunk, chunkBytes);
        [chunk, chunkBytes] = [[], 0];
        await this.active.handle.close();
        this.active = null;
      }
      this.active ??= await this.openNext();
      placements.push({ segment: this.active.segment.no, offset: this.active.segment.size + chunkBytes });
      chunk.push(record);
      chunkBytes += record.length;
    }
    await this.writeChunk(chunk, chunkBytes);
    return placements;
  }

  /** The bytes at a placement; shorter than `size` if the file ends early. */
  read(segmentNo: number, offset: number, size: number): Buffer {
    const segment = this.segments.get(segmentNo);
    if (segment === undefined) return Buffer.alloc(0);
    segment.readFd ??= openSync(segment.path, 'r');
    const bytes = Buffer.allocUnsafe(size);
    return bytes.subarray(0, readSync(segment.readFd, bytes, 0, size, offset));
  }

  addLive(segmentNo: number, delta: number): void {
    const segment = this.segments.get(segmentNo);
    if (segment !== undefined) segment.live += delta;
  }

  /**
   * Deletes every segment with no live batch, the active one included (the
   * next append opens a new file). Contract: state.json that finishes their
   * batches is already durable. The unlinks are not fsync'ed: a segment that
   * comes back after a power loss only holds finished records.
   */
  async deleteEmpty(): Promise<void> {
    for (const segment of [...this.segments.values()]) {
      if (segment.live > 0) continue;
      if (this.active?.segment === segment) {
        const { handle } = this.active;
        this.active = null;
        await handle.close();
      }
      closeReadFd(segment);
      this.segments.delete(segment.no);
      await unlink(segment.path).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const active = this.active;
    this.active = null;
    await active?.handle.close();
    for (const segment of this.segments.values()) closeReadFd(segment);
  }

  private async writeChunk(chunk: Buffer[], bytes: number): Promise<void> {
    if (chunk.length === 0 || this.active === null) return;
    const active = this.active;
    const before = active.segment.size;
    try {
      const data = Buffer.concat(chunk, bytes);
      for (let done = 0; done < data.length;) {
        const { bytesWritten } = await active.handle.write(data, done, data.length - done, before + done);
        if (bytesWritten <= 0) throw new Error(`short write to ${active.segment.path}`);
        done += bytesWritten;
      }
      await active.handle.datasync();
    } catch (err) {
      this.active = null;
      await active.handle.truncate(before).catch(() => undefined);
      await active.handle.close().catch(() => undefined);
      throw err;
    }
    active.segment.size += bytes;
  }

  private async openNext(): Promise<{ segment: SegmentFile; handle: FileHandle }> {
    const no = this.nextNo++;
    const path = join(this.dir, segmentName(no));
    const handle = await open(path, 'wx');
    try {
      await fsyncDir(this.dir);
    } catch (err) {
      await handle.close();
      throw err;
    }
    const segment: SegmentFile = { no, path, size: 0, live: 0, readFd: null };
    this.segments.set(no, segment);
    return { segment, handle };
  }
}

function closeReadFd(segment: SegmentFile): void {
  if (segment.readFd === null) return;
  closeSync(segment.readFd);
  segment.readFd = null;
}
