/**
 * The one place a detector store is opened from its configuration (`store:`):
 * the daemon and the CLI both come here, so a second backend (PostgreSQL for
 * several detectors) is chosen in one place.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SqliteStore } from './sqlite-store.js';
import type { DetectorStore } from './store.js';

export interface StoreConfig {
  /** store.path: the SQLite file. */
  path: string;
}

export interface OpenStoreOptions {
  /** Creates the file's directory first (the daemon does; a read-only command does not). */
  createDirectory?: boolean;
}

export function openStore(config: StoreConfig, o: OpenStoreOptions = {}): DetectorStore {
  if (o.createDirectory) mkdirSync(dirname(config.path), { recursive: true });
  return new SqliteStore(config.path);
}
