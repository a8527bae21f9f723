/**
 * Reading within a budget: sizes refused before any byte is read (a sparse
 * file of a terabyte costs a stat), gzip inflated as a stream that stops at
 * the budget (a bomb costs the budget), several gzip members, and errors that
 * say which limit was hit.
 */
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoundedReadError, gunzipBounded, readFileBounded, readTextBounded } from '../../../../common/io/bounded-read.js';

const MiB = 1024 * 1024;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-bounded-read-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failureOf(p: Promise<unknown>): Promise<BoundedReadError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BoundedReadError);
  return err as BoundedReadError;
}

/** `copies` gzip members of `mib` MiB of zeros each: small on disk, large inflated. */
function bomb(mib: number, copies: number): Buffer {
  const member = gzipSync(Buffer.alloc(mib * MiB));
  return Buffer.concat(Array.from({ length: copies }, () => member));
}

describe('readFileBounded', () => {
  it('reads a plain file up to the budget, and its gzip form the same, whatever the name', async () => {
    const text = JSON.stringify({ Records: [{ eventID: 'x'.repeat(1000) }] });
    await writeFile(join(dir, 'a.json'), text);
    await writeFile(join(dir, 'a.json.gz'), gzipSync(text));
    await writeFile(join(dir, 'gzip-without-suffix.json'), gzipSync(text));
    for (const f of ['a.json', 'a.json.gz', 'gzip-without-suffix.json'])
      expect(await readTextBounded(join(dir, f), text.length), f).toBe(text);
  });

  it('refuses a file larger than the budget on its size, before reading: a sparse terabyte costs nothing', async () => {
    const path = join(dir, 'huge.json');
    const fh = await open(path, 'w');
    await fh.truncate(1024 ** 4);
    await fh.close();
    const err = await failureOf(readFileBounded(path, 8 * MiB));
    expect(err.failure).toEqual({ kind: 'too-large', budget: 8 * MiB, compressed: false });
    expect(err.message).toBe(`larger than ${8 * MiB} bytes`);
  });

  it('stops inflating a gzip bomb at the budget: 1 GiB claimed, 8 MiB spent', async () => {
    const path = join(dir, 'bomb.json.gz');
    await writeFile(path, bomb(64, 16));
    const before = process.resourceUsage().maxRSS;
    const err = await failureOf(readFileBounded(path, 8 * MiB));
    expect(err.failure).toEqual({ kind: 'too-large', budget: 8 * MiB, compressed: true });
    expect(err.message).toBe(`decompresses to more than ${8 * MiB} bytes`);
    // Peak resident memory (KiB) did not grow by anything near the gigabyte the file inflates to.
    expect(process.resourceUsage().maxRSS - before).toBeLessThan(256 * 1024);
  });

  it('inflates every member of a multi-member gzip', async () => {
    const path = join(dir, 'members.gz');
    await writeFile(path, Buffer.concat([gzipSync('{"Records":'), gzipSync('[1,2,'), gzipSync('3]}')]));
    expect(await readTextBounded(path, 100)).toBe('{"Records":[1,2,3]}');
  });

  it('says "not valid gzip" for a truncated or corrupt one', async () => {
    const whole = gzipSync(JSON.stringify({ Records: Array.from({ length: 100 }, (_, i) => i) }));
    await writeFile(join(dir, 'truncated.json.gz'), whole.subarray(0, whole.length - 12));
    const corrupt = Buffer.from(whole);
    corrupt[20] = (corrupt[20] ?? 0) ^ 0xff;
    await writeFile(join(dir, 'corrupt.json.gz'), corrupt);
    for (const f of ['truncated.json.gz', 'corrupt.json.gz']) {
      const err = await failureOf(readFileBounded(join(dir, f), MiB));
      expect(err.failure.kind, f).toBe('bad-gzip');
      expect(err.message, f).toMatch(/^not valid gzip: /);
    }
  });

  it('a missing file is the file system error, not a budget failure', async () => {
    await expect(readFileBounded(join(dir, 'nope.json'), MiB)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('gunzipBounded', () => {
  it('inflates a buffer within the budget and refuses one past it', async () => {
    expect((await gunzipBounded(gzipSync('hello'), 5)).toString()).toBe('hello');
    expect((await failureOf(gunzipBounded(gzipSync('hello!'), 5))).failure).toEqual({ kind: 'too-large', budget: 5, compressed: true });
    expect((await failureOf(gunzipBounded(Buffer.from('not gzip'), 5))).failure.kind).toBe('bad-gzip');
  });
});
