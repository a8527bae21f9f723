/**
 * Runs the detector as a daemon (the only detector file that touches
 * `process`), and the `detector decisions` query.
 *
 *   SIGHUP → reload (keep the old config on error); SIGTERM/SIGINT → stop accepting, close the store, exit 0
 */
import { readConfigFileOf } from '../common/runtime/config-file.js';
import { AGENT_FILE, DETECTOR_FILE } from '../common/config/kinds.js';
import { formatProblems } from '../common/config/load.js';
import { createLogger } from '../common/log/logger.js';
import { packageVersion } from '../common/runtime/version.js';
import { superviseDaemon } from '../common/runtime/daemon.js';
import type { Output } from '../common/runtime/output.js';
import { detectorConfigSchema } from './config/schema.js';
import { preflightDetector } from './preflight.js';
import { DetectorApp } from './app.js';
import { openStore, storeKey } from './store/open-store.js';
import type { DetectorStore } from './store/store.js';
import { decisionRecord } from './decisions/record.js';
import { storeFileProblem } from './decisions/store-file.js';

async function loadChecked(configPath: string) {
  const loaded = await readConfigFileOf(configPath, detectorConfigSchema, DETECTOR_FILE, AGENT_FILE, 'egress-witness detector');
  if (!loaded.ok) return loaded;
  const pre = await preflightDetector(loaded.value);
  return pre.length > 0 ? { ok: false as const, problems: pre } : loaded;
}

export async function runDetector(configPath: string): Promise<number> {
  const loaded = await loadChecked(configPath);
  if (!loaded.ok) {
    process.stderr.write(formatProblems(`${configPath}: cannot start the detector`, loaded.problems));
    return 1;
  }
  const config = loaded.value;
  const logger = createLogger({ name: 'egress-witness-detector', level: config.log.level });
  const app = new DetectorApp(config, { logger, version: packageVersion(), nodeVersion: process.versions.node, env: process.env });
  try {
    await app.start();
  } catch (err) {
    logger.fatal({ event: 'start_failed', err }, `detector failed to start: ${(err as Error).message}`);
    logger.flush();
    await app.stop().catch(() => undefined);
    return 1;
  }
  return superviseDaemon(
    {
      reload: async () => void (await app.reload(await loadChecked(configPath))),
      reloadFailed: async (message) => void (await app.reload({ ok: false, problems: [{ path: '', message }] })),
      stop: () => app.stop(),
    },
    logger,
    { configPath, stopVerb: 'stopping' },
  );
}

/** `egress-witness detector decisions`: stored decisions as decision records (JSON lines), newest first. */
export async function listDecisions(
  configPath: string,
  o: { sinceMs: number; disposition: string | null; limit: number },
  out: Output,
): Promise<number> {
  const loaded = await readConfigFileOf(configPath, detectorConfigSchema, DETECTOR_FILE, AGENT_FILE, 'detector decisions');
  if (!loaded.ok) {
    out.stderr(formatProblems(`${configPath}: invalid detector configuration`, loaded.problems));
    return 1;
  }
  const c = loaded.value.store;
  if (!c.postgres) {
    // Never create a store here: a wrong path would print nothing and leave an empty database behind.
    const missing = await storeFileProblem(c.path);
    if (missing !== null) {
      out.stderr(`detector decisions: store.path ${missing} (set in ${configPath}; docs/configuration.md#listen-tls-admin-store)\n`);
      return 1;
    }
  }
  let store: DetectorStore;
  try {
    store = await openStore(c, { postgres: { env: process.env } });
  } catch (err) {
    out.stderr(`detector decisions: ${storeKey(c)}: cannot open the store: ${(err as Error).message} (set in ${configPath})\n`);
    return 1;
  }
  try {
    for (const d of await store.listDecisions({ sinceMs: Date.now() - o.sinceMs, disposition: o.disposition, limit: o.limit })) {
      out.stdout(`${JSON.stringify(decisionRecord(d))}\n`);
    }
  } finally {
    await store.close();
  }
  return 0;
}
