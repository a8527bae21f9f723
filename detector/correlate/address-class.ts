/**
 * Private address space as it appears in CloudTrail for calls through a VPC
 * interface endpoint: the caller's VPC address. IPv6 VPC addresses are
 * AWS-owned globally routable ones and are caught by the AWS ranges instead.
 */
import { CidrSet } from '../../common/cidr/cidr-set.js';

const PRIVATE = CidrSet.of(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']);

export function isPrivateAddress(ip: string): boolean {
  return PRIVATE.contains(ip);
}
