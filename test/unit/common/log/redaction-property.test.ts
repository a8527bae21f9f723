// Property: whatever shape a log object has — nested objects and arrays, errors with own properties and causes,
// fields bound on a child logger — a value under a secret-named key (signature, session token, secret, …) never
// reaches a log line. The guarantee the key-name walk gives and pino's fixed redact paths cannot (docs/decisions/0013).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createLogger } from '../../../../common/log/logger.js';
import { textSink } from '../../../helpers/log-sink.js';

const MARK = 'LEAKED-SECRET-';

/** Secret-named keys as code and configs spell them, in several cases. */
const SECRET_NAMES = [
  'signature',
  'Signature',
  'X-Amz-Signature',
  'session_token',
  'sessionToken',
  'SessionToken',
  'x-amz-security-token',
  'X-Amz-Security-Token',
  'secret',
  'secret_key',
  'secretAccessKey',
  'SecretAccessKey',
  'client_secret',
  'authorization',
  'Authorization',
  'proxy-authorization',
  'password',
  'token',
  'cookie',
  'private_key',
];
const PLAIN_NAMES = ['event', 'host', 'headers', 'req', 'detail', 'cause', 'list', 'a', 'b', 'config', 'body'];

/** A secret value of any type: the marker must never be printed, whatever it is wrapped in. */
const secretValue = fc
  .nat()
  .chain((n) => fc.constantFrom<unknown>(`${MARK}${n}`, [`${MARK}${n}`], { inner: `${MARK}${n}` }, Buffer.from(`${MARK}${n}`)));

/** Objects up to 8 levels deep holding secrets under secret names, and errors carrying them. */
const logged: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.boolean()),
    fc.dictionary(fc.oneof(fc.constantFrom(...SECRET_NAMES), fc.constantFrom(...PLAIN_NAMES)), tie('node'), { maxKeys: 4 }).map((o) => {
      // every secret-named key holds a secret
      for (const k of Object.keys(o)) if (SECRET_NAMES.includes(k)) o[k] = `${MARK}${k}`;
      return o;
    }),
    fc.array(tie('node'), { maxLength: 3 }),
    fc
      .tuple(fc.constantFrom(...SECRET_NAMES), secretValue, tie('node'))
      .map(([k, v, cause]) => Object.assign(new Error('upstream refused'), { [k]: v, cause })),
  ),
})).node;

describe('log redaction', () => {
  it('no value under a secret-named key reaches a line, at any nesting, in errors, or bound on a child', () => {
    fc.assert(
      fc.property(logged, fc.constantFrom(...SECRET_NAMES), secretValue, (obj, boundKey, boundValue) => {
        const out = textSink();
        const log = createLogger({ name: 'prop', level: 'info', destination: out.stream });
        log.info({ event: 'x', payload: obj, err: obj instanceof Error ? obj : undefined }, 'line');
        log.error({ event: 'y', err: Object.assign(new Error('e'), { headers: obj, token: `${MARK}t` }) }, 'error line');
        log.child({ [boundKey]: boundValue, request: obj }).warn({ event: 'z' }, 'child line');
        log
          .child({ component: 'c' })
          .child({ config: { [boundKey]: boundValue } })
          .info('grandchild line');
        if (obj instanceof Error) log.error(obj, 'an error as the first argument');
        expect(out.text()).not.toContain(MARK);
        // and every line is still one JSON object
        for (const line of out.text().split('\n').filter(Boolean)) expect(() => JSON.parse(line) as unknown).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });
});
