/**
 * The signal contract both daemons share, once the app has started:
 *
 *   READY=1 to systemd
 *   SIGHUP  → reload (serialized; RELOADING=1 … READY=1), errors become a failed reload, never a crash
 *   SIGTERM / SIGINT → STOPPING=1, stop the app (drain), resolve with the exit code (0 ok, 1 error)
 *   a second SIGTERM / SIGINT → exit 1 at once
 */
import type { Logger } from '../log/logger.js';
import { notifySystemd } from './systemd-notify.js';

export interface Supervised {
  /** Re-reads the config and applies it (or records the problems). */
  reload(): Promise<void>;
  /** Records a reload that threw: the running config stays, the reload gauge goes to 0. */
  reloadFailed(message: string): Promise<void>;
  stop(): Promise<void>;
}

export function superviseDaemon(app: Supervised, logger: Logger, opts: { configPath: string; stopVerb: string }): Promise<number> {
  notifySystemd('READY=1', logger, process);
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      notifySystemd('RELOADING=1', logger, process);
      logger.info({ event: 'reload_requested', config: opts.configPath }, 'SIGHUP: reloading configuration');
      try {
        await app.reload();
      } catch (err) {
        await app.reloadFailed(`reload failed: ${(err as Error).message}`).catch(() => undefined);
      }
      notifySystemd('READY=1', logger, process);
    });
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        logger.warn({ event: 'forced_exit', signal }, 'second signal: exiting now');
        logger.flush();
        process.exit(1);
      }
      stopping = true;
      notifySystemd('STOPPING=1', logger, process);
      logger.info({ event: 'stop_requested', signal }, `${signal}: ${opts.stopVerb}`);
      app.stop().then(
        () => {
          logger.flush();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ event: 'stop_failed', err }, 'error while stopping');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
