/** Whether a detector store exists at a path, checked without creating or changing anything. */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import Database from 'better-sqlite3';

/** null when `path` is a detector store; otherwise the end of a sentence that starts with the path's key. */
export async function storeFileProblem(path: string): Promise<string | null> {
  const relative = isAbsolute(path)
    ? ''
    : `; a relative path is resolved from the current directory, here ${resolve(path)}: give the absolute path the detector uses`;
  try {
    const s = await stat(path);
    if (!s.isFile()) return `${path} is not a file${relative}`;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT') return `${path} does not exist: the detector creates it when it first starts${relative}`;
    return `${path}: ${(err as Error).message}`;
  }
  let db: Database.Database | null = null;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'decisions'").get();
    return table ? null : `${path} is not a detector store (it has no decisions table)${relative}`;
  } catch (err) {
    return `${path} is not a detector store: ${(err as Error).message}`;
  } finally {
    db?.close();
  }
}
