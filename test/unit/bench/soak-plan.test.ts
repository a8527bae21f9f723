import { describe, expect, it } from 'vitest';
import { DEFAULT_SOAK_MS, parseArgs } from '../../../bench/lib/args.js';
import { faultPlan } from '../../../bench/soak.js';

describe('the soak fault plan', () => {
  it('for the default 30 minutes: a SIGHUP a minute, a detector outage every 4 min, one agent SIGKILL inside an outage', () => {
    const plan = faultPlan(DEFAULT_SOAK_MS);
    const at = (kind: string) => plan.filter((f) => f.kind === kind).map((f) => f.atMs / 1000);
    expect(at('agent-sighup')).toEqual(Array.from({ length: 29 }, (_, i) => 60 * (i + 1)));
    expect(at('detector-kill')).toEqual([90, 330, 570, 810, 1050, 1290, 1530]);
    expect(at('detector-start')).toEqual([110, 350, 590, 830, 1070, 1310, 1550]);
    expect(at('agent-kill')).toEqual([340]);
    expect(plan.map((f) => f.atMs)).toEqual([...plan.map((f) => f.atMs)].sort((a, b) => a - b));
  });

  it('keeps every outage a minute clear of the end, and the agent SIGKILL inside one, for short runs too', () => {
    for (const minutes of [3, 5, 10, 45]) {
      const ms = minutes * 60_000;
      const plan = faultPlan(ms);
      const kills = plan.filter((f) => f.kind === 'detector-kill').map((f) => f.atMs);
      const starts = plan.filter((f) => f.kind === 'detector-start').map((f) => f.atMs);
      expect(kills.length).toBeGreaterThan(0);
      expect(starts.every((t) => t <= ms - 60_000)).toBe(true);
      const agentKills = plan.filter((f) => f.kind === 'agent-kill');
      expect(agentKills).toHaveLength(1);
      const t = agentKills[0]!.atMs;
      expect(kills.some((k, i) => k < t && t < (starts[i] ?? 0))).toBe(true);
      // From 10 minutes on (where growth is judged) the second half is one agent process.
      if (minutes >= 10) expect(t).toBeLessThan(ms / 2);
    }
  });
});

describe('bench options for the soak', () => {
  it.each([
    [['--soak'], DEFAULT_SOAK_MS],
    [['--soak', '10m'], 600_000],
    [['--soak=90s'], 90_000],
    [['--soak', '--duration', '3m'], 180_000],
    [['--duration', '3m', '--soak'], 180_000],
    [['--duration', '3m'], 180_000],
    [['--soak', '--agent-log-level', 'warn'], DEFAULT_SOAK_MS],
    [['--quick'], null],
  ])('%j → %s ms', (argv, soakMs) => {
    expect(parseArgs(argv).soakMs).toBe(soakMs);
  });

  it('refuses a duration that is not one', () => {
    expect(() => parseArgs(['--soak', 'soon'])).toThrow(/not a duration/);
  });
});
