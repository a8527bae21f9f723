/**
 * The shipper's words for a send that did not deliver: each configuration problem names the key
 * that fixes it and the doc section that explains the fix, and says the batches are kept.
 */
import { describe, expect, it } from 'vitest';
import { answerResult, describeFailure, type NetworkProblem, type SendResult } from '../../../../agent/ship/send-failures.js';

const url = new URL('https://detector.example.internal:8443/v1/telemetry');
const ctx = { url, gatewayId: 'gw-dc1' };
const KEPT = '; batches stay in the spool and are sent once it is fixed';

function problem(p: NetworkProblem): SendResult {
  return { outcome: { kind: 'retryable', reason: 'ETEST' }, refusal: null, problem: p };
}

describe('describeFailure', () => {
  it.each([
    ['tls-untrusted', 'upstream.ca_file', "the detector's TLS certificate at detector.example.internal:8443 is not trusted: "],
    [
      'tls-expired',
      'tls.cert (detector)',
      "the detector's TLS certificate at detector.example.internal:8443 is expired or not yet valid: ",
    ],
    ['tls-wrong-name', 'telemetry.detector_url', `the detector's TLS certificate does not name "detector.example.internal": `],
    ['plain-http-to-tls', 'telemetry.detector_url', 'the detector at detector.example.internal:8443 speaks TLS: '],
    ['tls-to-plain-http', 'telemetry.detector_url', 'the detector at detector.example.internal:8443 does not speak TLS: '],
  ] as const)('%s names %s and the detector TLS recipe', (p, fix, start) => {
    const r = describeFailure(problem(p), ctx);
    expect(r).toMatchObject({ event: 'telemetry_misconfigured', level: 'error', fix });
    expect(r.message.startsWith(start), r.message).toBe(true);
    expect(r.message.endsWith(KEPT), r.message).toBe(true);
    expect(r.message.slice(0, -KEPT.length)).toMatch(/[(; ]docs\/operations\.md#detector-tls-in-five-commands\)$/);
  });

  it('an unknown gateway names gateway.id and the gateways section', () => {
    const r = describeFailure(answerResult(401, { refusal: 'unknown-gateway' }, 0), ctx);
    expect(r).toMatchObject({ event: 'telemetry_misconfigured', fix: 'gateway.id' });
    expect(r.message).toBe(
      `the detector does not know gateway "gw-dc1" (gateway.id): add it to the detector's gateways list (gateways[].id, with this gateway's secret) and reload the detector, or correct gateway.id (docs/configuration.md#gateways)${KEPT}`,
    );
  });

  it('a 404 names telemetry.detector_url, the path it needs and the telemetry section', () => {
    const r = describeFailure(answerResult(404, {}, 0), { url: new URL('https://detector.example.internal:8443/'), gatewayId: 'gw-dc1' });
    expect(r).toMatchObject({ event: 'telemetry_misconfigured', fix: 'telemetry.detector_url' });
    expect(r.message).toBe(
      `the detector answered 404 at /: telemetry.detector_url must name its telemetry endpoint, e.g. https://detector.example.internal:8443/v1/telemetry (docs/configuration.md#telemetry)${KEPT}`,
    );
  });
});
