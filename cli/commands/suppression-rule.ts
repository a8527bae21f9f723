/** `egress-witness suppression-rule`: the static GuardDuty filter, as JSON or as an AWS CLI command. */
import { formatProblems } from '../../common/config/load.js';
import { buildSuppressionRule, suppressionRuleCli } from '../../common/guardduty/suppression-rule.js';
import { loadAnyConfig } from './load-any-config.js';
import type { Output } from '../../common/runtime/output.js';

export async function suppressionRuleCommand(
  o: { config: string; format: 'json' | 'cli'; expand?: boolean; detectorId?: string; name: string; rank: string },
  out: Output,
): Promise<number> {
  const loaded = await loadAnyConfig(o.config);
  if (!loaded.ok) {
    out.stderr(formatProblems(`${o.config}: invalid configuration`, loaded.problems));
    return 1;
  }
  const v = loaded.value;
  const cidrs = v.kind === 'agent' ? v.config.gateway.egress_cidrs : v.config.gateways.flatMap((g) => g.egress_cidrs);
  const rank = Number(o.rank);
  const r = buildSuppressionRule({
    cidrs,
    name: o.name,
    rank,
    expand: o.expand ?? false,
    ...(o.detectorId ? { detectorId: o.detectorId } : {}),
  });
  if (!r.ok) {
    out.stderr(`suppression-rule: ${r.error}\n`);
    return 1;
  }
  for (const n of r.notes) out.stderr(`note: ${n}\n`);
  out.stdout(o.format === 'cli' ? `${suppressionRuleCli(r.input)}\n` : `${JSON.stringify(r.input, null, 2)}\n`);
  return 0;
}
