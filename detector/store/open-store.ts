/**
 * The one place a detector store is opened from its configuration (`store:`):
 * the daemon and the CLI both come here. `store.postgres` set: PostgreSQL
 * (connected and migrated before the store is answered); otherwise the SQLite
 * file at `store.path`.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PostgresStoreConfig } from './postgres-connection.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { DetectorStore } from './store.js';

export interface StoreConfig {
  /** store.path: the SQLite file (used when store.postgres is not set). */
  path: string;
  /** store.postgres: the database several detectors can share. */
  postgres?: PostgresStoreConfig | null;
}

export interface OpenStoreOptions {
  /** Creates the SQLite file's directory first (the daemon does; a read-only command does not). */
  createDirectory?: boolean;
  /** PostgreSQL: statement timings and pool errors, for metrics and logs. */
  postgres?: PostgresStoreOptions;
}

export async function openStore(config: StoreConfig, o: OpenStoreOptions = {}): Promise<DetectorStore> {
  if (config.postgres) return PostgresStore.open(config.postgres, o.postgres);
  if (o.createDirectory) mkdirSync(dirname(config.path), { recursive: true });
  return new SqliteStore(config.path);
}

/** The key that names the store, for messages: "store.path FILE" or "store.postgres". */
export function storeKey(config: StoreConfig): string {
  return config.postgres ? 'store.postgres' : `store.path ${config.path}`;
}
