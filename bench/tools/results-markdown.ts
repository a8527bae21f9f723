/**
 * Prints a results JSON (bench/results/latest.json by default) as the
 * Markdown table used in bench/README.md, with the machine line and the targets.
 *
 *   node dist/bench/tools/results-markdown.js [bench/results/latest.json]
 */
import { readFileSync } from 'node:fs';
import { formatMarkdown, type Machine, type Row, type Target } from '../lib/results.js';

const file = process.argv[2] ?? 'bench/results/latest.json';
const data = JSON.parse(readFileSync(file, 'utf8')) as {
  machine: Machine;
  durationSeconds: number;
  rows: Row[];
  targets: Target[];
  agentLogLevel?: string;
};
const m = data.machine;
const out = [
  `Measured ${m.date.slice(0, 10)} on ${m.cores} cores (${m.cpuModel}), ${(m.memoryMiB / 1024).toFixed(1)} GiB, Node ${m.node}, ${m.platform} ${m.kernel}, fd hard limit ${m.fdLimit}; run time ${data.durationSeconds} s; agent log level ${data.agentLogLevel ?? 'info'}.`,
  '',
  formatMarkdown(data.rows),
  '',
  '| target | result | detail |',
  '|---|---|---|',
  ...data.targets.map((t) => `| ${t.text} | ${t.met === null ? 'n/a' : t.met ? 'met' : '**missed**'} | ${t.detail} |`),
];
process.stdout.write(`${out.join('\n')}\n`);
