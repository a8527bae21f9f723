/** `egress-witness transparent-rules`: the nftables (or iptables) redirect for the transparent listener. */
import { readFile } from 'node:fs/promises';
import { formatProblems } from '../../common/config/load.js';
import { readConfigFileOf, describeFileError } from '../../common/runtime/config-file.js';
import { AGENT_FILE, DETECTOR_FILE } from '../../common/config/kinds.js';
import { parseAwsIpRanges } from '../../common/cidr/aws-ip-ranges.js';
import { agentConfigSchema } from '../../agent/config/schema.js';
import { transparentRules, type RulesDestinations, type RulesFormat } from '../../agent/net/transparent-rules.js';
import type { Output } from '../../common/runtime/output.js';

export interface TransparentRulesOptions {
  config: string;
  awsIpRanges?: string;
  allDestinations?: boolean;
  format: RulesFormat;
}

export async function transparentRulesCommand(o: TransparentRulesOptions, out: Output): Promise<number> {
  const fail = (message: string, code = 1) => {
    out.stderr(`transparent-rules: ${message}\n`);
    return code;
  };
  if ((o.awsIpRanges === undefined) === (o.allDestinations !== true))
    return fail(
      o.allDestinations
        ? 'give either --aws-ip-ranges or --all-destinations, not both'
        : 'give --aws-ip-ranges FILE (AWS ip-ranges.json) to redirect connections to AWS, or --all-destinations',
      2,
    );
  const loaded = await readConfigFileOf(o.config, agentConfigSchema, AGENT_FILE, DETECTOR_FILE, 'transparent-rules');
  if (!loaded.ok) {
    out.stderr(formatProblems(`${o.config}: invalid agent configuration`, loaded.problems));
    return 1;
  }
  const c = loaded.value;
  if (c.transparent === null)
    return fail(`${o.config} has no transparent section: add one with transparent.listen, e.g. "[::]:3129" (see docs/transparent.md)`);
  let destinations: RulesDestinations;
  if (o.awsIpRanges !== undefined) {
    let text: string;
    try {
      text = await readFile(o.awsIpRanges, 'utf8');
    } catch (err) {
      return fail(describeFileError(o.awsIpRanges, err));
    }
    const ranges = parseAwsIpRanges(text);
    if (!ranges.ok) {
      out.stderr(
        `transparent-rules: ${o.awsIpRanges} is not a usable AWS ip-ranges.json\n${ranges.problems.map((p) => `  ${p}\n`).join('')}`,
      );
      return 1;
    }
    destinations = { kind: 'aws', ...ranges.value };
  } else {
    destinations = { kind: 'all', allowCidrs: c.proxy.allow_destination_cidrs };
  }
  const clients = c.proxy.allowed_clients.length > 0 ? c.proxy.allowed_clients : c.networks.flatMap((n) => n.cidrs);
  const r = transparentRules(
    { gatewayId: c.gateway.id, clients, destinations, ports: c.transparent.ports, listenPort: c.transparent.listen.port },
    o.format,
  );
  if (!r.ok) return fail(r.error);
  for (const n of [...listenNotes(c.transparent.listen.host, clients), ...r.notes]) out.stderr(`note: ${n}\n`);
  if (o.format !== 'nft')
    out.stderr(`note: the jump from PREROUTING is not part of ${o.format}-restore input; add it once with the command in the header\n`);
  out.stdout(r.text);
  return 0;
}

/** What the kernel's redirect needs from the listener's address. */
function listenNotes(host: string, clients: readonly string[]): string[] {
  const notes: string[] = [];
  const v6Clients = clients.some((c) => c.includes(':'));
  if (host === '0.0.0.0' && v6Clients)
    notes.push('transparent.listen is IPv4-only (0.0.0.0) but some clients are IPv6: listen on "[::]:PORT" to receive both');
  else if (host !== '0.0.0.0' && host !== '::')
    notes.push(
      `transparent.listen is bound to ${host}: a redirect delivers to the address of the interface the connection came in on, so listen on "[::]:PORT" unless that is ${host}`,
    );
  return notes;
}
