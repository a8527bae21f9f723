/**
 * Which endpoint (service, region) a CloudTrail event's call went to, in the
 * agent's vocabulary, so a tunnel-only gateway's sightings can be compared.
 *
 * The agent names a service by the endpoint prefix, the label just left of
 * the region (`sts` in `sts.us-east-1.amazonaws.com`, `ecr` in
 * `api.ecr.…`, `s3` for bucket hosts, `s3-control`), and gives global
 * endpoints the region they are signed for (us-east-1 for
 * `sts.amazonaws.com`). CloudTrail names the service by `eventSource`
 * (`sts.amazonaws.com`); the two agree for most services, not all (SES is
 * `ses.amazonaws.com` behind `email.…`). So the result is a short list of
 * candidates: the host the client dialled
 * (`tlsDetails.clientProvidedHostHeader`) when CloudTrail recorded it, then
 * the eventSource prefix and its known aliases. Any candidate seen counts.
 */
import type { CloudTrailEvent } from '../cloudtrail/parse.js';

export interface EndpointCandidate {
  service: string;
  /** null: a global endpoint (no region in the host), e.g. `sts.amazonaws.com`. */
  region: string | null;
}

/** eventSource prefix → other endpoint prefixes the agent may report for it. */
const ENDPOINT_ALIASES: Readonly<Record<string, readonly string[]>> = {
  ses: ['email'],
  bedrock: ['bedrock-runtime', 'bedrock-agent', 'bedrock-agent-runtime'],
  s3: ['s3-control', 's3-object-lambda'],
};

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;
const AWS_SUFFIXES = ['.amazonaws.com.cn', '.amazonaws.com', '.api.aws'];
const S3_FAMILY = /^(s3-control|s3-object-lambda|s3express)(?:-fips)?$|^s3express-/;

/**
 * Endpoint prefix and region of the dialled host: `sts.us-east-1.amazonaws.com`
 * → sts us-east-1, `api.ecr.eu-west-1…` → ecr, `bucket.s3.eu-west-1…` → s3,
 * `s3-eu-west-1.amazonaws.com` → s3 eu-west-1, `sts.amazonaws.com` → sts null.
 */
export function endpointOfHost(host: string): EndpointCandidate | null {
  const h = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const suffix = AWS_SUFFIXES.find((s) => h.endsWith(s));
  if (suffix === undefined) return null;
  const labels = h
    .slice(0, -suffix.length)
    .split('.')
    .filter((l) => l !== '');
  const regionAt = labels.findIndex((l) => REGION.test(l));
  const region = regionAt >= 0 ? (labels[regionAt] ?? null) : null;
  const before = (regionAt >= 0 ? labels.slice(0, regionAt) : labels).filter((l) => l !== 'dualstack');
  const label = before[before.length - 1];
  if (label === undefined) return null;
  const family = S3_FAMILY.exec(label);
  if (family) return { service: family[1] ?? 's3express', region };
  // S3 virtual-hosted, access point and legacy (`s3-eu-west-1`) forms: the labels further left are a bucket.
  if (label === 's3' || label.startsWith('s3-')) {
    const legacy = /^s3-(?:fips-)?([a-z]{2}(?:-[a-z]+)+-\d+)$/.exec(label);
    return { service: 's3', region: legacy?.[1] ?? region };
  }
  return { service: label.replace(/-fips$/, ''), region };
}

/** Candidate (service, region) pairs for the event, most precise first, without duplicates. */
export function endpointCandidates(e: CloudTrailEvent): EndpointCandidate[] {
  const out: EndpointCandidate[] = [];
  const add = (service: string, region: string | null): void => {
    if (!out.some((c) => c.service === service && c.region === region)) out.push({ service, region });
  };
  const fromHost = e.requestHost !== null ? endpointOfHost(e.requestHost) : null;
  const prefix = e.eventSource.toLowerCase().replace(/\.amazonaws\.com(?:\.cn)?$/, '');
  const names = [...(fromHost !== null ? [fromHost.service] : []), prefix, ...(ENDPOINT_ALIASES[prefix] ?? [])];
  // A global endpoint (or no host at all) cannot be told from the signing region:
  // CloudTrail logs calls to global STS/IAM endpoints with awsRegion us-east-1,
  // and the agent reports them with that region (older agents: null).
  const regions: (string | null)[] = fromHost?.region != null ? [fromHost.region] : [e.awsRegion, null];
  for (const region of regions) for (const service of names) add(service, region);
  return out;
}
