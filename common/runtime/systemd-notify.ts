/**
 * sd_notify without a native addon: Node cannot send on the unix datagram
 * NOTIFY_SOCKET, so `/usr/bin/systemd-notify` does it as a child (the unit
 * sets NotifyAccess=all). Without NOTIFY_SOCKET this does nothing.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from '../log/logger.js';

const NOTIFY = '/usr/bin/systemd-notify';

export function notifySystemd(
  state: 'READY=1' | 'RELOADING=1' | 'STOPPING=1',
  logger: Logger,
  proc: { env: NodeJS.ProcessEnv; pid: number },
): void {
  const env = proc.env;
  if (!env.NOTIFY_SOCKET) return;
  if (!existsSync(NOTIFY)) {
    logger.warn({ event: 'sd_notify_unavailable' }, `${NOTIFY} not found; cannot tell systemd ${state}`);
    return;
  }
  const args = state === 'READY=1' ? ['--ready', `MAINPID=${proc.pid}`] : [state, `MAINPID=${proc.pid}`];
  execFile(NOTIFY, args, { env, timeout: 5_000 }, (err) => {
    if (err) logger.warn({ event: 'sd_notify_failed', err: err.message, state }, 'systemd-notify failed');
  });
}
