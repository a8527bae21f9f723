/**
 * Reading untrusted files and bodies within a byte budget, without blocking
 * the event loop: sizes are checked before anything is read (stat of the open
 * file), gzip is inflated as a stream that stops the moment its output passes
 * the budget, and nothing is ever inflated whole in one synchronous call.
 *
 *   open ─▶ fstat (size ≤ budget?) ─▶ first bytes gzip? ─┬─ no  ─▶ read ≤ budget
 *                                                        └─ yes ─▶ gunzip stream ─▶ collect ≤ budget
 *
 * A budget must be one that can succeed: the text of a file is one JavaScript
 * string (see common/json/text-limits.ts).
 */
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

export type BoundedReadFailure =
  /** The input, or what it inflates to, passed the budget (reading stopped there). */
  { kind: 'too-large'; budget: number; compressed: boolean } | { kind: 'bad-gzip'; message: string };

export class BoundedReadError extends Error {
  constructor(readonly failure: BoundedReadFailure) {
    super(
      failure.kind === 'bad-gzip'
        ? `not valid gzip: ${failure.message}`
        : failure.compressed
          ? `decompresses to more than ${failure.budget} bytes`
          : `larger than ${failure.budget} bytes`,
    );
    this.name = 'BoundedReadError';
  }
}

function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Collects a stream into one buffer, failing as soon as it passes `budget` bytes (the stream is then destroyed). */
async function collect(source: AsyncIterable<Buffer>, budget: number, compressed: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > budget) throw new BoundedReadError({ kind: 'too-large', budget, compressed });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Inflates gzip (one member or several) as a stream, up to `budget` bytes of output. */
export async function gunzipBounded(input: Buffer | Readable, budget: number): Promise<Buffer> {
  const source = Buffer.isBuffer(input) ? Readable.from([input]) : input;
  let out: Buffer | null = null;
  // pipeline() reports its own abort when the last stage stops early: keep the reason apart.
  let exceeded: BoundedReadError | null = null;
  try {
    await pipeline(source, createGunzip({ chunkSize: 64 * 1024 }), async (inflated: AsyncIterable<Buffer>) => {
      try {
        out = await collect(inflated, budget, true);
      } catch (err) {
        if (err instanceof BoundedReadError) exceeded = err;
        throw err;
      }
    });
  } catch (err) {
    throw exceeded ?? new BoundedReadError({ kind: 'bad-gzip', message: (err as Error).message });
  }
  return out!;
}

/**
 * A file's bytes — gunzipped when it starts with the gzip magic, whatever its name — at most
 * `budget` of them. The size is checked on the open file before any byte is read, so a huge file
 * costs a stat, not a read; a file that grows meanwhile is still cut off at the budget.
 */
export async function readFileBounded(path: string, budget: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > budget) throw new BoundedReadError({ kind: 'too-large', budget, compressed: false });
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    const stream = fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 64 * 1024 });
    try {
      return isGzip(head.subarray(0, bytesRead)) ? await gunzipBounded(stream, budget) : await collect(stream, budget, false);
    } finally {
      stream.destroy();
    }
  } finally {
    await fh.close();
  }
}

/** The same, as UTF-8 text. */
export async function readTextBounded(path: string, budget: number): Promise<string> {
  return (await readFileBounded(path, budget)).toString('utf8');
}

/**
 * A stream's bytes (an object body from the network) — gunzipped when it starts with the gzip
 * magic — at most `budget` of them; reading stops as soon as the budget is passed.
 */
export async function readStreamBounded(stream: Readable, budget: number): Promise<Buffer> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  if (first.done) return Buffer.alloc(0);
  const rest: AsyncIterable<Buffer> = {
    async *[Symbol.asyncIterator]() {
      yield first.value;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    },
  };
  try {
    // A gzip magic split over two chunks is not worth a special case: a body's first chunk is larger.
    return isGzip(first.value) ? await gunzipBounded(Readable.from(rest), budget) : await collect(rest, budget, false);
  } finally {
    stream.destroy();
  }
}
