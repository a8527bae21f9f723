/**
 * The two kinds of configuration file, told apart by the top-level sections
 * only one of them has: a command given the other kind's file says so.
 */
import type { ConfigKind } from './load.js';

export const AGENT_FILE: ConfigKind = { name: 'agent', markers: ['gateway', 'networks', 'proxy', 'inspect', 'transparent', 'upstream'] };

export const DETECTOR_FILE: ConfigKind = {
  name: 'detector',
  markers: ['gateways', 'cloudtrail', 'correlation', 'store', 'findings', 'guardduty', 'listen', 'tls', 'ingest', 'aws_ip_ranges'],
};
