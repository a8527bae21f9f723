/**
 * Runs the agent as a daemon: the only agent file that touches `process`
 * (signals, exit, systemd readiness).
 *
 *   SIGHUP  → re-read and validate the file, swap atomically, or keep the old config
 *   SIGTERM / SIGINT → drain (stop accepting, tunnels finish until the deadline), exit 0
 *   second SIGTERM / SIGINT → exit at once
 */
import { readConfigFileOf } from '../common/runtime/config-file.js';
import { formatProblems } from '../common/config/load.js';
import { createLogger } from '../common/log/logger.js';
import { packageVersion } from '../common/runtime/version.js';
import { superviseDaemon } from '../common/runtime/daemon.js';
import { agentConfigSchema } from './config/schema.js';
import { AGENT_FILE, DETECTOR_FILE } from '../common/config/kinds.js';
import { preflightAgent } from './preflight.js';
import { AgentApp } from './app.js';

export async function runAgent(configPath: string, opts: { logLevel?: string } = {}): Promise<number> {
  const loaded = await readConfigFileOf(configPath, agentConfigSchema, AGENT_FILE, DETECTOR_FILE, 'egress-witness agent');
  if (!loaded.ok) {
    process.stderr.write(formatProblems(`${configPath}: invalid configuration`, loaded.problems));
    return 1;
  }
  const config = loaded.value;
  const pre = await preflightAgent(config);
  if (pre.length > 0) {
    process.stderr.write(formatProblems(`${configPath}: cannot start`, pre));
    return 1;
  }
  const logger = createLogger({ name: 'egress-witness-agent', level: (opts.logLevel ?? config.log.level) as 'info' });
  const app = new AgentApp(config, {
    logger,
    version: packageVersion(),
    nodeVersion: process.versions.node,
    execArgv: process.execArgv,
    ...(opts.logLevel ? { logLevelOverride: opts.logLevel } : {}),
  });
  try {
    await app.start();
  } catch (err) {
    logger.fatal({ event: 'start_failed', err }, `agent failed to start: ${(err as Error).message}`);
    logger.flush();
    return 1;
  }
  return superviseDaemon(
    {
      reload: async () => {
        const next = await readConfigFileOf(configPath, agentConfigSchema, AGENT_FILE, DETECTOR_FILE, 'egress-witness agent');
        const pre = next.ok ? await preflightAgent(next.value) : [];
        await app.reload(next.ok && pre.length > 0 ? { ok: false, problems: pre } : next);
      },
      reloadFailed: async (message) => void (await app.reload({ ok: false, problems: [{ path: '', message }] })),
      stop: () => app.stop(),
    },
    logger,
    { configPath, stopVerb: 'draining' },
  );
}
