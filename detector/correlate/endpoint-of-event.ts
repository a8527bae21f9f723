/**
 * Which endpoint (service, region) a CloudTrail event's call went to, in the
 * agent's vocabulary, so a tunnel-only gateway's sightings can be compared.
 *
 * The agent names a service by the endpoint host's prefix (`sts` in
 * `sts.us-east-1.amazonaws.com`); CloudTrail names it by `eventSource`
 * (`sts.amazonaws.com`). They agree for most services, not all (SES is
 * `ses.amazonaws.com` behind `email.…`; ECR's API is `api.ecr.…`). So the
 * result is a short list of candidates: the host the client dialled
 * (`tlsDetails.clientProvidedHostHeader`) when CloudTrail recorded it, the
 * eventSource prefix, and known aliases. Any candidate seen counts.
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
  ecr: ['api.ecr'],
  sagemaker: ['api.sagemaker', 'runtime.sagemaker'],
  bedrock: ['bedrock-runtime', 'bedrock-agent', 'bedrock-agent-runtime'],
  dynamodb: ['streams.dynamodb'],
  s3: ['s3-control'],
};

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;
const AWS_SUFFIXES = ['.amazonaws.com.cn', '.amazonaws.com', '.api.aws'];

/**
 * Service names and region from the dialled host:
 * `sts.us-east-1.amazonaws.com` → [sts] us-east-1, `api.ecr.eu-west-1…` →
 * [ecr, api.ecr], `bucket.s3.eu-west-1…` → [s3], `sts.amazonaws.com` → [sts] null.
 */
export function endpointOfHost(host: string): { services: string[]; region: string | null } | null {
  const h = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const suffix = AWS_SUFFIXES.find((s) => h.endsWith(s));
  if (suffix === undefined) return null;
  const labels = h.slice(0, -suffix.length).split('.').filter((l) => l !== '');
  const regionAt = labels.findIndex((l) => REGION.test(l));
  const region = regionAt >= 0 ? (labels[regionAt] ?? null) : null;
  const before = (regionAt >= 0 ? labels.slice(0, regionAt) : labels).filter((l) => l !== 'dualstack');
  // S3 virtual-hosted and legacy (`s3-eu-west-1`) forms put a bucket first; the bucket is no service.
  const s3 = before.findIndex((l) => l === 's3' || l.startsWith('s3-'));
  if (s3 >= 0) {
    const legacy = /^s3-([a-z]{2}(?:-[a-z]+)+-\d+)$/.exec(before[s3] ?? '');
    return { services: before[s3] === 's3-control' ? ['s3-control', 's3'] : ['s3'], region: legacy?.[1] ?? region };
  }
  const last = before[before.length - 1];
  if (last === undefined) return null;
  const services = [last.replace(/-fips$/, '')];
  if (before.length > 1) services.push(before.join('.').replace(/-fips$/, ''));
  return { services, region };
}

/** Candidate (service, region) pairs for the event, most precise first, without duplicates. */
export function endpointCandidates(e: CloudTrailEvent): EndpointCandidate[] {
  const out: EndpointCandidate[] = [];
  const add = (service: string, region: string | null): void => {
    if (!out.some((c) => c.service === service && c.region === region)) out.push({ service, region });
  };
  const fromHost = e.requestHost !== null ? endpointOfHost(e.requestHost) : null;
  if (fromHost !== null) for (const service of fromHost.services) add(service, fromHost.region);
  const prefix = e.eventSource.toLowerCase().replace(/\.amazonaws\.com(?:\.cn)?$/, '');
  const names = [prefix, ...(ENDPOINT_ALIASES[prefix] ?? [])];
  // A global endpoint (or no host at all) cannot be told from us-east-1: CloudTrail
  // logs calls to global STS/IAM endpoints with awsRegion us-east-1, and an agent
  // may report such a host with region null or with its signing region.
  const regions: (string | null)[] = fromHost?.region != null ? [fromHost.region] : [e.awsRegion, null];
  for (const region of regions) for (const service of names) add(service, region);
  return out;
}
