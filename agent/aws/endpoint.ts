/**
 * Classifies a host name as an AWS service endpoint, from its shape alone
 * (no DNS, no endpoint database). Sources: the partitions table shipped with
 * the AWS SDKs (DNS suffixes, dual-stack suffixes, region names), the S3
 * endpoint rules, and the documented global endpoints.
 *
 * Contracts the caller relies on:
 * - `service` is the endpoint prefix: the label just left of the region
 *   ("monitoring" for CloudWatch, "sagemaker" for runtime.sagemaker,
 *   "execute-api" for an API id host). Labels further left (API ids,
 *   "runtime.", "api.", IoT account prefixes) are ignored. The SigV4 scope is
 *   the better name when the request is signed.
 * - Global endpoints report the region their requests are signed for and
 *   CloudTrail logs them in: us-east-1 in the aws partition (us-west-2 for
 *   Global Accelerator and Network Manager), us-gov-west-1 in GovCloud,
 *   cn-north-1 / cn-northwest-1 in China. Their variant is "global".
 * - Hosts AWS hands to customers' own resources (EC2 public DNS, ELB, RDS,
 *   OpenSearch domains, S3 websites) are not API endpoints and give null.
 * - The aws-iso-e and aws-iso-f partitions are not modelled and give null.
 */

export type Partition = 'aws' | 'aws-cn' | 'aws-us-gov' | 'aws-iso' | 'aws-iso-b' | 'aws-eusc';

export type EndpointVariant =
  | 'regional'
  | 'fips'
  | 'dualstack'
  | 'fips-dualstack'
  | 'global'
  | 's3-virtual-host'
  | 's3-path'
  | 's3-legacy'
  | 's3-dualstack'
  | 's3-access-point'
  | 's3-control'
  | 's3-express'
  | 'vpce';

export interface AwsEndpoint {
  service: string;
  /** Signing region; null where the host does not say (S3 Transfer Acceleration, Multi-Region Access Points). */
  region: string | null;
  partition: Partition;
  variant: EndpointVariant;
  /** Bucket named by the host (virtual-host style); for access points the `NAME-ACCOUNT` label or alias. */
  bucket?: string;
}

type Fixed = readonly [service: string, region: string, partition: Partition, variant?: EndpointVariant];

/** Endpoints that cannot be read by shape: no region label, or a pseudo-region label. */
const FIXED_HOSTS: ReadonlyMap<string, Fixed> = new Map<string, Fixed>([
  ['iam.amazonaws.com', ['iam', 'us-east-1', 'aws']],
  ['iam-fips.amazonaws.com', ['iam', 'us-east-1', 'aws', 'fips']],
  ['sts.amazonaws.com', ['sts', 'us-east-1', 'aws']],
  ['s3.amazonaws.com', ['s3', 'us-east-1', 'aws']],
  ['s3-external-1.amazonaws.com', ['s3', 'us-east-1', 'aws', 's3-legacy']],
  ['route53.amazonaws.com', ['route53', 'us-east-1', 'aws']],
  ['route53-fips.amazonaws.com', ['route53', 'us-east-1', 'aws', 'fips']],
  ['cloudfront.amazonaws.com', ['cloudfront', 'us-east-1', 'aws']],
  ['cloudfront-fips.amazonaws.com', ['cloudfront', 'us-east-1', 'aws', 'fips']],
  ['cloudfront.global.api.aws', ['cloudfront', 'us-east-1', 'aws', 'dualstack']],
  ['budgets.amazonaws.com', ['budgets', 'us-east-1', 'aws']],
  ['waf.amazonaws.com', ['waf', 'us-east-1', 'aws']],
  ['global.health.amazonaws.com', ['health', 'us-east-1', 'aws']],
  // Global services whose only endpoint carries a region label.
  ['organizations.us-east-1.amazonaws.com', ['organizations', 'us-east-1', 'aws']],
  ['ce.us-east-1.amazonaws.com', ['ce', 'us-east-1', 'aws']],
  ['shield.us-east-1.amazonaws.com', ['shield', 'us-east-1', 'aws']],
  ['route53domains.us-east-1.amazonaws.com', ['route53domains', 'us-east-1', 'aws']],
  ['support.us-east-1.amazonaws.com', ['support', 'us-east-1', 'aws']],
  ['globalaccelerator.us-west-2.amazonaws.com', ['globalaccelerator', 'us-west-2', 'aws']],
  ['networkmanager.us-west-2.amazonaws.com', ['networkmanager', 'us-west-2', 'aws']],
  ['iam.us-gov.amazonaws.com', ['iam', 'us-gov-west-1', 'aws-us-gov']],
  ['route53.us-gov.amazonaws.com', ['route53', 'us-gov-west-1', 'aws-us-gov']],
  ['iam.cn-north-1.amazonaws.com.cn', ['iam', 'cn-north-1', 'aws-cn']],
  ['route53.amazonaws.com.cn', ['route53', 'cn-northwest-1', 'aws-cn']],
  ['global.health.amazonaws.com.cn', ['health', 'cn-northwest-1', 'aws-cn']],
]);

interface DnsSuffix {
  suffix: string;
  partitions: readonly Partition[];
  dualStack: boolean;
}

/** DNS suffixes of the partitions (SDK partitions table), most specific first. */
const DNS_SUFFIXES: readonly DnsSuffix[] = [
  { suffix: 'api.amazonwebservices.com.cn', partitions: ['aws-cn'], dualStack: true },
  { suffix: 'amazonaws.com.cn', partitions: ['aws-cn'], dualStack: false },
  { suffix: 'api.amazonwebservices.eu', partitions: ['aws-eusc'], dualStack: true },
  { suffix: 'amazonaws.eu', partitions: ['aws-eusc'], dualStack: false },
  { suffix: 'api.aws.ic.gov', partitions: ['aws-iso'], dualStack: true },
  { suffix: 'c2s.ic.gov', partitions: ['aws-iso'], dualStack: false },
  { suffix: 'api.aws.scloud', partitions: ['aws-iso-b'], dualStack: true },
  { suffix: 'sc2s.sgov.gov', partitions: ['aws-iso-b'], dualStack: false },
  { suffix: 'api.aws', partitions: ['aws', 'aws-us-gov'], dualStack: true },
  { suffix: 'amazonaws.com', partitions: ['aws', 'aws-us-gov'], dualStack: false },
];

/** `us-east-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`, `eusc-de-east-1`. */
const REGION = /^(?:[a-z]{2}|eusc)(?:-[a-z]+)+-\d{1,2}$/;
const HOST = /^[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*$/;
const SERVICE_LABEL = /^[a-z][a-z0-9-]*$/;
const ACCOUNT_ID = /^\d{12}$/;
const ACCESS_POINT_LABEL = /^[a-z0-9-]+-\d{12}$/;
const S3EXPRESS_ZONE = /^s3express(-fips)?-[a-z0-9]+-az\d+$/;
const S3_LEGACY = /^s3-(fips-)?(.+)$/;
const VPCE_ID = /^vpce-[0-9a-z]+-[0-9a-z]+(?:-[a-z0-9-]+)?$/;
/** Customer-content hosts that share an AWS suffix but are not APIs. */
const NOT_AN_API = /^s3-website/;

export function regionPartition(region: string): Partition | null {
  if (!REGION.test(region)) return null;
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  if (region.startsWith('eusc-')) return 'aws-eusc';
  if (/-iso[a-z]*-/.test(region)) return null;
  return 'aws';
}

/** Lower-cases and strips a trailing dot and a `:port`; null for IP-literal or invalid names. */
function normalizeHost(input: string): string | null {
  let host = input.trim().toLowerCase();
  if (host.startsWith('[')) return null;
  const colon = host.indexOf(':');
  if (colon !== -1) {
    if (!/^:\d{1,5}$/.test(host.slice(colon))) return null;
    host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.length > 253 || !HOST.test(host)) return null;
  return host;
}

export function classifyEndpoint(host: string): AwsEndpoint | null {
  const name = normalizeHost(host);
  if (name === null) return null;
  const fixed = FIXED_HOSTS.get(name);
  if (fixed) return { service: fixed[0], region: fixed[1], partition: fixed[2], variant: fixed[3] ?? 'global' };
  const dns = DNS_SUFFIXES.find((d) => name.endsWith(`.${d.suffix}`));
  if (!dns) return null;
  const labels = name.slice(0, name.length - dns.suffix.length - 1).split('.');
  return classifyVpce(labels, dns) ?? classifyRegionlessS3(labels, dns) ?? classifyRegional(labels, dns);
}

/** True when `host` is an AWS API endpoint this module recognises. */
export function isAwsHost(host: string): boolean {
  return classifyEndpoint(host) !== null;
}

function joinBucket(labels: readonly string[]): string | undefined {
  return labels.length === 0 ? undefined : labels.join('.');
}

function withBucket(endpoint: AwsEndpoint, bucket: string | undefined): AwsEndpoint {
  return bucket === undefined ? endpoint : { ...endpoint, bucket };
}

/** `[prefix.]vpce-ID-SUFFIX[-AZ].SERVICE.REGION.vpce.amazonaws.com[.cn]`. */
function classifyVpce(labels: readonly string[], dns: DnsSuffix): AwsEndpoint | null {
  if (dns.dualStack || labels.at(-1) !== 'vpce') return null;
  const region = labels.at(-2) ?? '';
  const partition = regionPartition(region);
  const idIndex = labels.findIndex((l) => VPCE_ID.test(l));
  if (partition === null || !dns.partitions.includes(partition) || idIndex === -1) return null;
  const serviceLabel = labels.at(-3) ?? '';
  if (idIndex >= labels.length - 3 || !SERVICE_LABEL.test(serviceLabel)) return null;
  const base: AwsEndpoint = { service: serviceLabel, region, partition, variant: 'vpce' };
  if (serviceLabel !== 's3') return base;
  // S3 interface endpoints put "bucket.", "accesspoint." or "control." in front of the endpoint id.
  const prefix = labels.slice(0, idIndex);
  const kind = prefix.at(-1);
  if (kind === 'control') return { ...base, service: 's3-control' };
  if (kind === 'bucket' || kind === 'accesspoint') return withBucket(base, joinBucket(prefix.slice(0, -1)));
  return withBucket(base, joinBucket(prefix));
}

/** S3 hosts without a region label: legacy `s3-REGION`, Transfer Acceleration, Multi-Region Access Points, `bucket.s3.amazonaws.com`. */
function classifyRegionlessS3(labels: readonly string[], dns: DnsSuffix): AwsEndpoint | null {
  if (dns.suffix !== 'amazonaws.com') return null;
  const last = labels.at(-1) ?? '';
  const head = labels.slice(0, -1);
  if (last === 's3' && head.length > 0) {
    return { service: 's3', region: 'us-east-1', partition: 'aws', variant: 's3-virtual-host', bucket: head.join('.') };
  }
  if (last === 's3-external-1') {
    return withBucket({ service: 's3', region: 'us-east-1', partition: 'aws', variant: 's3-legacy' }, joinBucket(head));
  }
  if (last === 's3-global' && head.at(-1) === 'accesspoint' && head.length > 1) {
    return { service: 's3', region: null, partition: 'aws', variant: 's3-access-point', bucket: head.slice(0, -1).join('.') };
  }
  const accel = last === 'dualstack' ? head.at(-1) : last;
  if (accel === 's3-accelerate') {
    const bucket = last === 'dualstack' ? head.slice(0, -1) : head;
    if (bucket.length === 0) return null;
    const variant = last === 'dualstack' ? 's3-dualstack' : 's3-virtual-host';
    return { service: 's3', region: null, partition: 'aws', variant, bucket: bucket.join('.') };
  }
  const legacy = S3_LEGACY.exec(last);
  const partition = legacy ? regionPartition(legacy[2] ?? '') : null;
  if (!legacy || partition === null || !dns.partitions.includes(partition)) return null;
  return withBucket({ service: 's3', region: legacy[2] ?? null, partition, variant: 's3-legacy' }, joinBucket(head));
}

/** `[prefix.]SERVICE[-fips][.dualstack].REGION.SUFFIX`. */
function classifyRegional(labels: readonly string[], dns: DnsSuffix): AwsEndpoint | null {
  const region = labels.at(-1) ?? '';
  const partition = regionPartition(region);
  if (partition === null || !dns.partitions.includes(partition)) return null;
  let prefix = labels.slice(0, -1);
  const s3DualStack = !dns.dualStack && prefix.at(-1) === 'dualstack';
  if (s3DualStack) prefix = prefix.slice(0, -1);
  const serviceLabel = prefix.at(-1);
  if (serviceLabel === undefined || !SERVICE_LABEL.test(serviceLabel) || NOT_AN_API.test(serviceLabel)) return null;
  const head = prefix.slice(0, -1);
  const s3 = classifyRegionalS3(serviceLabel, head, region, partition, s3DualStack);
  if (s3 !== undefined || s3DualStack) return s3 ?? null;
  const fips = serviceLabel.endsWith('-fips');
  const service = fips ? serviceLabel.slice(0, -'-fips'.length) : serviceLabel;
  if (!SERVICE_LABEL.test(service)) return null;
  const variant = dns.dualStack ? (fips ? 'fips-dualstack' : 'dualstack') : fips ? 'fips' : 'regional';
  return { service, region, partition, variant };
}

/**
 * The S3 family under a regional name. Returns undefined when the label is
 * not an S3 one, null when it is but the host is malformed.
 */
function classifyRegionalS3(
  label: string,
  head: readonly string[],
  region: string,
  partition: Partition,
  dualStack: boolean,
): AwsEndpoint | null | undefined {
  const at = (service: string, variant: EndpointVariant): AwsEndpoint => ({ service, region, partition, variant });
  if (label === 's3' || label === 's3-fips') {
    const fips = label === 's3-fips';
    const bucket = joinBucket(head);
    const variant: EndpointVariant = fips
      ? dualStack
        ? 'fips-dualstack'
        : 'fips'
      : dualStack
        ? 's3-dualstack'
        : bucket === undefined
          ? 's3-path'
          : 's3-virtual-host';
    return withBucket(at('s3', variant), bucket);
  }
  if (label === 's3-accesspoint' || label === 's3-accesspoint-fips' || label === 's3-object-lambda' || label === 's3-object-lambda-fips') {
    const accessPoint = head[0];
    if (head.length !== 1 || accessPoint === undefined || !ACCESS_POINT_LABEL.test(accessPoint)) return null;
    const service = label.startsWith('s3-object-lambda') ? 's3-object-lambda' : 's3';
    return { ...at(service, 's3-access-point'), bucket: accessPoint };
  }
  if (label === 's3-control' || label === 's3-control-fips') {
    if (head.length > 1 || (head.length === 1 && !ACCOUNT_ID.test(head[0] ?? ''))) return null;
    return at('s3-control', 's3-control');
  }
  if (label === 's3express-control' || label === 's3express-control-fips') {
    return head.length === 0 ? at('s3express', 's3-express') : null;
  }
  if (S3EXPRESS_ZONE.test(label)) {
    const bucket = joinBucket(head);
    if (bucket !== undefined && !/--xa?-s3$/.test(bucket)) return null;
    return withBucket(at('s3express', 's3-express'), bucket);
  }
  return undefined;
}
