/** Reads a config file and tells agent from detector files by their top-level keys. */
import { readConfigFile, readTopLevelKeys } from '../../common/runtime/config-file.js';
import type { ConfigProblem } from '../../common/config/load.js';
import { agentConfigSchema, type AgentConfig } from '../../agent/config/schema.js';
import { detectorConfigSchema, type DetectorConfig, DETECTOR_MARKER_KEYS } from '../../detector/config/schema.js';

export type AnyConfig = { kind: 'agent'; config: AgentConfig } | { kind: 'detector'; config: DetectorConfig };

export async function loadAnyConfig(
  file: string,
): Promise<{ ok: true; value: AnyConfig } | { ok: false; kind: 'agent' | 'detector' | 'unknown'; problems: ConfigProblem[] }> {
  const keys = await readTopLevelKeys(file);
  if (!keys.ok) return { ok: false, kind: 'unknown', problems: keys.problems };
  const isAgent = keys.keys.includes('gateway');
  const isDetector = !isAgent && (DETECTOR_MARKER_KEYS as readonly string[]).some((k) => keys.keys.includes(k));
  if (isAgent) {
    const r = await readConfigFile(file, agentConfigSchema);
    return r.ok ? { ok: true, value: { kind: 'agent', config: r.value } } : { ok: false, kind: 'agent', problems: r.problems };
  }
  if (isDetector) {
    const r = await readConfigFile(file, detectorConfigSchema);
    return r.ok ? { ok: true, value: { kind: 'detector', config: r.value } } : { ok: false, kind: 'detector', problems: r.problems };
  }
  return {
    ok: false,
    kind: 'unknown',
    problems: [
      {
        path: '',
        message: 'cannot tell the kind of file: an agent config has a top-level "gateway" section, a detector config has "gateways"',
      },
    ],
  };
}
