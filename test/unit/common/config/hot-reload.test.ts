// Hot-reload key lists are typed against the config schema: a key the schema does not have does not compile.
import { describe, expect, it } from 'vitest';
import { applyHotReload, type ConfigPath } from '../../../../common/config/hot-reload.js';
import type { AgentConfig } from '../../../../agent/config/schema.js';
import type { DetectorConfig } from '../../../../detector/config/schema.js';
import { AGENT_HOT_KEYS } from '../../../../agent/app.js';
import { DETECTOR_HOT_KEYS } from '../../../../detector/app.js';
import { MINIMAL_AGENT_CONFIG, agentConfigText } from '../../../helpers/config-text.js';

interface Sample {
  a: { b: number; c: { d: string } | null };
  list: { x: number }[];
  e?: { f: boolean };
}

describe('hot-reload keys', () => {
  it('are the dotted paths of the config type: sections (nullable or optional alike) recurse, arrays are leaves', () => {
    const ok: ConfigPath<Sample>[] = ['a', 'a.b', 'a.c', 'a.c.d', 'list', 'e', 'e.f'];
    expect(ok).toHaveLength(7);
    // @ts-expect-error a key the type does not have
    const typo: ConfigPath<Sample> = 'a.bb';
    // @ts-expect-error arrays are leaves: nothing inside a list is a key of its own
    const inList: ConfigPath<Sample> = 'list.x';
    // @ts-expect-error a misspelt agent key does not compile
    const agentTypo: ConfigPath<AgentConfig> = 'proxy.allowed_port';
    // @ts-expect-error nor a detector key
    const detectorTypo: ConfigPath<DetectorConfig> = 'guardduty.detectorid';
    expect([typo, inList, agentTypo, detectorTypo]).toHaveLength(4);
  });

  it('the agent and detector lists name keys of their schemas', () => {
    const agent: readonly ConfigPath<AgentConfig>[] = AGENT_HOT_KEYS;
    const detector: readonly ConfigPath<DetectorConfig>[] = DETECTOR_HOT_KEYS;
    expect(agent).toContain('proxy.allowed_ports');
    expect(detector).toContain('log.level');
  });

  it('a typed key applies on reload, the rest waits for a restart', () => {
    const running = agentConfigText.load(MINIMAL_AGENT_CONFIG);
    const next = {
      ...running,
      proxy: { ...running.proxy, max_tunnels: running.proxy.max_tunnels + 1, listen: { ...running.proxy.listen, port: 1 } },
    };
    const { effective, needsRestart } = applyHotReload(running, next, AGENT_HOT_KEYS);
    expect(effective.proxy.max_tunnels).toBe(running.proxy.max_tunnels + 1);
    expect(effective.proxy.listen).toEqual(running.proxy.listen);
    expect(needsRestart).toEqual(['proxy.listen.port']);
  });
});
