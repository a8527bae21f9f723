/** `egress-witness check-config FILE`: every problem at once, or a one-line summary. */
import { formatProblems } from '../../common/config/load.js';
import { preflightAgent } from '../../agent/preflight.js';
import { preflightDetector } from '../../detector/preflight.js';
import { loadAnyConfig } from './load-any-config.js';
import type { Output } from '../../common/runtime/output.js';

export async function checkConfigCommand(file: string, out: Output): Promise<number> {
  const loaded = await loadAnyConfig(file);
  if (!loaded.ok) {
    out.stderr(
      formatProblems(
        `${file}: invalid ${loaded.kind === 'unknown' ? 'configuration' : `${loaded.kind} configuration`} (${loaded.problems.length} problem${loaded.problems.length === 1 ? '' : 's'})`,
        loaded.problems,
      ),
    );
    return 1;
  }
  const v = loaded.value;
  const problems = v.kind === 'agent' ? await preflightAgent(v.config) : await preflightDetector(v.config);
  if (problems.length > 0) {
    out.stderr(
      formatProblems(
        `${file}: ${v.kind} configuration is valid, but ${problems.length} referenced file${problems.length === 1 ? ' has a problem' : 's have problems'}`,
        problems,
      ),
    );
    return 1;
  }
  if (v.kind === 'agent') {
    const c = v.config;
    const telemetry =
      [c.telemetry.detector_url ? `detector ${c.telemetry.detector_url}` : null, c.telemetry.file ? `file ${c.telemetry.file}` : null]
        .filter(Boolean)
        .join(' + ') || 'metrics and logs only';
    out.stdout(
      `${file}: agent configuration OK — gateway ${c.gateway.id}, ${c.gateway.egress_cidrs.length} egress CIDR${c.gateway.egress_cidrs.length === 1 ? '' : 's'}, ` +
        `${c.networks.length} network${c.networks.length === 1 ? '' : 's'}, listen ${c.proxy.listen.text}${c.transparent ? `, transparent ${c.transparent.listen.text} (ports ${c.transparent.ports.join(' ')})` : ''}, ${c.inspect ? `inspecting ${c.inspect.hosts.join(' ')}` : 'tunnel-only'}, telemetry to ${telemetry}\n`,
    );
  } else {
    const c = v.config;
    out.stdout(
      `${file}: detector configuration OK — ${c.gateways.length} gateway${c.gateways.length === 1 ? '' : 's'}${c.gateways.length ? ` (${c.gateways.map((g) => g.id).join(', ')})` : ''}, ` +
        `listen ${c.listen.text}${c.tls.cert ? ' (TLS)' : ''}, store ${c.store.path}, GuardDuty ${c.guardduty.mode} mode` +
        `${c.findings.security_hub ? `, Security Hub ${c.findings.security_hub.region} (account ${c.findings.security_hub.account_id})` : ''}\n`,
    );
  }
  return 0;
}
