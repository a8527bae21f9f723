/**
 * `egress-witness detector migrate`: brings the detector's store to the schema
 * this version writes, and says what it did. The daemon does the same when it
 * starts; running it first lets an upgrade's migration happen (and fail) before
 * any replica restarts. PostgreSQL migrations take an advisory lock: replicas
 * starting meanwhile wait and then find the schema current. A store at a newer
 * version than this detector knows is refused (exit 1).
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AGENT_FILE, DETECTOR_FILE } from '../../common/config/kinds.js';
import { formatProblems } from '../../common/config/load.js';
import { readConfigFileOf } from '../../common/runtime/config-file.js';
import type { Output } from '../../common/runtime/output.js';
import { detectorConfigSchema } from '../../detector/config/schema.js';
import { POSTGRES_SCHEMA_VERSION } from '../../detector/store/postgres-schema.js';
import { PostgresStore } from '../../detector/store/postgres-store.js';
import { SqliteStore, STORE_SCHEMA_VERSION } from '../../detector/store/sqlite-store.js';

export async function migrateCommand(o: { config: string }, out: Output): Promise<number> {
  const loaded = await readConfigFileOf(o.config, detectorConfigSchema, DETECTOR_FILE, AGENT_FILE, 'detector migrate');
  if (!loaded.ok) {
    out.stderr(formatProblems(`${o.config}: invalid detector configuration`, loaded.problems));
    return 1;
  }
  const c = loaded.value.store;
  if (c.postgres) {
    let store: PostgresStore;
    try {
      store = await PostgresStore.open(c.postgres, { env: process.env });
    } catch (err) {
      out.stderr(`detector migrate: ${(err as Error).message} (set in ${o.config})\n`);
      return 1;
    }
    const m = store.migration;
    await store.close();
    out.stdout(
      m.applied.length === 0
        ? `store.postgres ${store.target.describe}: schema version ${m.to}, current (this detector writes ${POSTGRES_SCHEMA_VERSION})\n`
        : `store.postgres ${store.target.describe}: schema version ${m.from} → ${m.to} (applied ${m.applied.join(', ')})\n`,
    );
    return 0;
  }
  try {
    await mkdir(dirname(c.path), { recursive: true });
    // Opening the file upgrades it (each step in one transaction with its version).
    await new SqliteStore(c.path).close();
  } catch (err) {
    out.stderr(`detector migrate: store.path ${c.path}: ${(err as Error).message} (set in ${o.config})\n`);
    return 1;
  }
  out.stdout(`store.path ${c.path}: schema version ${STORE_SCHEMA_VERSION}, current\n`);
  return 0;
}
