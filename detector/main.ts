/**
 * Runs the detector as a daemon (the only detector file that touches
 * `process`), and the `detector decisions` query.
 *
 *   SIGHUP → reload (keep the old config on error); SIGTERM/SIGINT → stop accepting, close the store, exit 0
 */
import { readConfigFile } from '../common/runtime/config-file.js';
import { formatProblems } from '../common/config/load.js';
import { parseDuration } from '../common/config/units.js';
import { createLogger } from '../common/log/logger.js';
import { packageVersion } from '../common/runtime/version.js';
import { superviseDaemon } from '../common/runtime/daemon.js';
import type { Output } from '../common/runtime/output.js';
import { detectorConfigSchema } from './config/schema.js';
import { preflightDetector } from './preflight.js';
import { DetectorApp } from './app.js';
import { openStore } from './store/open-store.js';
import type { DetectorStore } from './store/store.js';

async function loadChecked(configPath: string) {
  const loaded = await readConfigFile(configPath, detectorConfigSchema);
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
  const app = new DetectorApp(config, { logger, version: packageVersion(), nodeVersion: process.versions.node });
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

/** `egress-witness detector decisions`: stored decisions as JSON lines, newest first. */
export async function listDecisions(
  configPath: string,
  o: { since: string; disposition: string | null; limit: number },
  out: Output,
): Promise<number> {
  const loaded = await readConfigFile(configPath, detectorConfigSchema);
  if (!loaded.ok) {
    out.stderr(formatProblems(`${configPath}: invalid configuration`, loaded.problems));
    return 1;
  }
  const since = parseDuration(o.since);
  if (since === null || !Number.isInteger(o.limit) || o.limit < 1) {
    out.stderr(`detector decisions: --since must be a duration like 1h (got "${o.since}") and --limit a positive integer\n`);
    return 2;
  }
  let store: DetectorStore;
  try {
    store = openStore(loaded.value.store);
  } catch (err) {
    out.stderr(`detector decisions: cannot open the store ${loaded.value.store.path}: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    for (const d of store.listDecisions({ sinceMs: Date.now() - since, disposition: o.disposition, limit: o.limit })) {
      out.stdout(
        `${JSON.stringify({ kind: d.kind, id: d.subjectId, time: new Date(d.timeMs).toISOString(), decidedAt: new Date(d.decidedMs).toISOString(), disposition: d.disposition, rule: d.rule, accessKeyId: d.accessKeyId, sourceIp: d.sourceIp, gatewayId: d.gatewayId, detail: d.detail })}\n`,
      );
    }
  } finally {
    store.close();
  }
  return 0;
}
