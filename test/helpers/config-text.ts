/** Config text through the real loader and schema, for the config tests: the value, or every problem as `path: reason`. */
import type { z } from 'zod';
import { formatProblem, loadConfigText } from '../../common/config/load.js';
import { agentConfigSchema } from '../../agent/config/schema.js';
import { detectorConfigSchema } from '../../detector/config/schema.js';

/** The smallest valid agent file: one gateway, one routed network. */
export const MINIMAL_AGENT_CONFIG = `gateway:
  id: gw-test
  egress_cidrs: [203.0.113.0/28]
networks:
  - name: lab
    cidrs: [10.0.0.0/8]
`;

function loader<T>(schema: z.ZodType<T>) {
  return {
    /** The loaded config; throws with every problem when the text is not valid. */
    load(text: string): T {
      const r = loadConfigText(text, schema);
      if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'));
      return r.value;
    },
    /** Every problem as `path: reason`; empty when the text is valid. */
    problems(text: string): string[] {
      const r = loadConfigText(text, schema);
      return r.ok ? [] : r.problems.map(formatProblem);
    },
  };
}

export const agentConfigText = loader(agentConfigSchema);
export const detectorConfigText = loader(detectorConfigSchema);
