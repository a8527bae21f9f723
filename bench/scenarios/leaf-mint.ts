/**
 * Inspect mode's certificate cost, measured in-process on the agent's own
 * modules: the first mint (which also makes the shared leaf key), a mint for
 * a host not seen before (cold), and a cache hit.
 */
import { createInspectionCa, loadInspectionCa } from '../../agent/tls/ca.js';
import { LeafMinter } from '../../agent/tls/leaf-minter.js';
import type { Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';

const DAY_MS = 86_400_000;

const scenario: Scenario = {
  name: 'leaf-mint',
  order: 10,
  title: 'inspect-mode leaf certificate minting: first, cold (new host), cache hit',
  async run(ctx) {
    const { certPem, keyPem } = await createInspectionCa({ permittedDomains: ['amazonaws.com'], validityDays: 3 });
    const ca = await loadInspectionCa(certPem, keyPem);
    const minter = new LeafMinter(ca, { validityMs: 7 * DAY_MS, cacheSize: 10_000 });
    const host = (i: number): string => `svc${i}.us-east-1.amazonaws.com`;

    let t = performance.now();
    await minter.secureContextFor('first.us-east-1.amazonaws.com');
    const firstMs = performance.now() - t;

    const cold: number[] = [];
    const cpu0 = process.cpuUsage();
    const coldStart = performance.now();
    for (let i = 0; i < ctx.preset.mintHosts; i++) {
      t = performance.now();
      await minter.secureContextFor(host(i));
      cold.push(performance.now() - t);
    }
    const coldWall = performance.now() - coldStart;
    const coldCpu = process.cpuUsage(cpu0);

    // Concurrent misses: what a burst of new hosts costs (WebCrypto signs off the main thread).
    const burst = Math.min(200, ctx.preset.mintHosts);
    t = performance.now();
    await Promise.all(Array.from({ length: burst }, (_, i) => minter.secureContextFor(`burst${i}.us-east-1.amazonaws.com`)));
    const burstPerSec = burst / ((performance.now() - t) / 1000);

    t = performance.now();
    for (let i = 0; i < ctx.preset.mintHits; i++) await minter.secureContextFor(host(i % ctx.preset.mintHosts));
    const hitMs = (performance.now() - t) / ctx.preset.mintHits;
    const stats = minter.stats();
    cold.sort((a, b) => a - b);
    const p99 = cold[Math.min(cold.length - 1, Math.floor(cold.length * 0.99))] ?? null;
    const base = { scenario: 'leaf-mint', peer: null, better: 'lower' as const };
    ctx.record({
      ...base,
      metric: 'first mint',
      subject: 'ew leaf minter',
      unit: 'ms',
      value: firstMs,
      note: 'includes the shared P-256 leaf key generation',
    });
    ctx.record({
      ...base,
      metric: 'cold mint p50',
      subject: 'ew leaf minter',
      unit: 'ms',
      value: median(cold),
      note: `${cold.length} new hosts, one after another; CPU ${(((coldCpu.user + coldCpu.system) / 1000 / coldWall) * 100).toFixed(0)}% of a core`,
    });
    ctx.record({ ...base, metric: 'cold mint p99', subject: 'ew leaf minter', unit: 'ms', value: p99 });
    ctx.record({
      ...base,
      metric: 'cold mints/s, burst',
      subject: 'ew leaf minter',
      unit: 'mints/s',
      better: 'higher',
      value: burstPerSec,
      note: `${burst} new hosts at once`,
    });
    ctx.record({
      ...base,
      metric: 'cache hit',
      subject: 'ew leaf minter',
      unit: 'µs',
      value: hitMs * 1000,
      note: `${ctx.preset.mintHits} lookups, ${stats.hits} hits, ${stats.misses} misses`,
    });
  },
};

export default scenario;
