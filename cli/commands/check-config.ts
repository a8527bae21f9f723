/** `egress-witness check-config FILE`: every problem at once, or a one-line summary. */
import { formatProblems } from '../../common/config/load.js';
import { preflightAgent } from '../../agent/preflight.js';
import { preflightDetector } from '../../detector/preflight.js';
import { loadAnyConfig, type AnyConfig } from './load-any-config.js';
import { isLoopbackHost } from '../../common/cidr/ip.js';
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
  for (const w of warnings(v)) out.stderr(`warning: ${w}\n`);
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
        `listen ${c.listen.text}${c.tls.cert ? ' (TLS)' : ''}, store ${c.store.postgres ? 'postgres' : c.store.path}, GuardDuty ${c.guardduty.mode} mode` +
        `${c.findings.security_hub ? `, Security Hub ${c.findings.security_hub.region} (account ${c.findings.security_hub.account_id})` : ''}\n`,
    );
  }
  return 0;
}

const TLS_RECIPE = 'docs/operations.md#detector-tls-in-five-commands';

/** Valid, but worth a second look: printed on stderr, the exit code stays 0. */
function warnings(v: AnyConfig): string[] {
  const out: string[] = [];
  if (v.kind === 'agent') {
    const url = v.config.telemetry.detector_url;
    const u = url === null ? null : new URL(url);
    if (u && u.protocol === 'http:' && !isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')))
      out.push(
        `telemetry.detector_url: http:// to another host: telemetry (access key ids, client addresses) crosses the network in clear; give the detector tls.cert and tls.key and use https:// (${TLS_RECIPE})`,
      );
  } else {
    const c = v.config;
    if (c.tls.cert === null && !isLoopbackHost(c.listen.host))
      out.push(
        `listen: ${c.listen.text} is reachable from other hosts without TLS: telemetry and the bearer token cross the network in clear; set tls.cert and tls.key (${TLS_RECIPE})`,
      );
  }
  return out;
}
