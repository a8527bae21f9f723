/**
 * The report windows of one long-lived tunnel. A tunnel is not reported only
 * when it closes: while it lives, every telemetry flush that finds its
 * current window at least `LIVE_REPORT_INTERVAL_MS` old reports that window
 * (its bytes since the previous report, its own start and end) and opens the
 * next. So every observation of a tunnel spans at most the interval plus one
 * `telemetry.flush_interval` — well inside the detector's
 * `ingest.max_observation_span` — and the evidence is continuous for as long
 * as the tunnel is up. The windows partition the tunnel's life and bytes:
 * each byte is in exactly one window, the last one reported at close.
 *
 *   open ─────── window 1 ───────┬────── window 2 ──────┬── last window ──▶ close
 *                     report at a flush ≥ interval   report at a flush ≥ interval
 *
 * Pure: the caller supplies the clock and the tunnel's running byte totals.
 */

/** How old a live tunnel's window must be before a flush reports it. */
export const LIVE_REPORT_INTERVAL_MS = 60_000;

export interface WindowReport {
  startedAt: number;
  endedAt: number;
  bytesUp: number;
  bytesDown: number;
}

export class ReportWindow {
  private from: number;
  private reportedUp = 0;
  private reportedDown = 0;
  private windows = 0;

  constructor(readonly connectionStartedAt: number) {
    this.from = connectionStartedAt;
  }

  /** Whether the current window is old enough to be reported by a live report at `now`. */
  due(now: number, intervalMs: number): boolean {
    return now - this.from >= intervalMs;
  }

  /** Windows handed out so far (0: the tunnel has not been reported yet). */
  get reported(): number {
    return this.windows;
  }

  /**
   * Closes the current window at `now` given the tunnel's byte totals so
   * far (which only grow), and opens the next one there. A total below what
   * was already reported counts as nothing new, never as negative bytes.
   */
  take(now: number, totalUp: number, totalDown: number): WindowReport {
    const endedAt = Math.max(now, this.from);
    const report: WindowReport = {
      startedAt: this.from,
      endedAt,
      bytesUp: Math.max(0, totalUp - this.reportedUp),
      bytesDown: Math.max(0, totalDown - this.reportedDown),
    };
    this.from = endedAt;
    this.reportedUp = Math.max(this.reportedUp, totalUp);
    this.reportedDown = Math.max(this.reportedDown, totalDown);
    this.windows++;
    return report;
  }
}
