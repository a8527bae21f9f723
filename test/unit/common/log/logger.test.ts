import { describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../../../common/log/logger.js';
import type { LoggerOptions } from '../../../../common/log/logger.js';
import { textSink, type TextSink } from '../../../helpers/log-sink.js';

function build(level: LoggerOptions['level'] = 'info'): { log: Logger; out: TextSink } {
  const out = textSink();
  return { log: createLogger({ level, name: 'egress-witness-test', destination: out.stream }), out };
}

const SECRETS = [
  'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/sts/aws4_request, Signature=deadbeef',
  'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN',
  'Basic dXNlcjpwYXNz',
  'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  'hmac-shared-secret',
];

describe('createLogger', () => {
  it('writes one JSON object per line with a string level label, name, ISO time and msg', () => {
    const { log, out } = build();
    log.info({ event: 'started', gateway_id: 'gw-test' }, 'agent started');
    log.warn({ event: 'slow' }, 'slow');
    log.error('plain');
    const [a, b, c] = out.lines();
    expect(a).toMatchObject({ level: 'info', name: 'egress-witness-test', event: 'started', gateway_id: 'gw-test', msg: 'agent started' });
    expect(b).toMatchObject({ level: 'warn', event: 'slow' });
    expect(c).toMatchObject({ level: 'error', msg: 'plain' });
    expect(new Date(a!.time as string).toISOString()).toBe(a!.time);
    // No pid or hostname on every line: journald has them.
    expect(a).not.toHaveProperty('pid');
    expect(a).not.toHaveProperty('hostname');
  });

  it('keeps snake_case keys as they are', () => {
    const { log, out } = build();
    log.info({ event: 'tunnel_closed', bytes_up: 1, bytes_down: 2, duration_ms: 3 }, 'closed');
    expect(Object.keys(out.lines()[0]!)).toEqual(['level', 'time', 'name', 'event', 'bytes_up', 'bytes_down', 'duration_ms', 'msg']);
  });

  it('filters by level, and silent writes nothing', () => {
    const { log, out } = build('warn');
    log.info('no');
    log.debug('no');
    log.warn('yes');
    log.fatal('yes too');
    expect(out.lines().map((l) => l.level)).toEqual(['warn', 'fatal']);
    const quiet = build('silent');
    quiet.log.fatal('nothing');
    expect(quiet.out.text()).toBe('');
  });

  it('redacts authorization, x-amz-security-token, proxy-authorization, secret and secret_key at any depth it is given', () => {
    const { log, out } = build();
    log.info(
      {
        event: 'request',
        headers: {
          authorization: SECRETS[0],
          'x-amz-security-token': SECRETS[1],
          'proxy-authorization': SECRETS[2],
          host: 'sts.amazonaws.com',
        },
        config: { telemetry: { secret: SECRETS[4], secret_file: '/etc/egress-witness/gw.key' } },
        credentials: [{ access_key_id: 'AKIAIOSFODNN7EXAMPLE', secret_key: SECRETS[3] }],
        deep: { a: { b: { c: { secret: SECRETS[4] } } } },
      },
      'request',
    );
    const raw = out.text();
    for (const s of SECRETS) expect(raw).not.toContain(s);
    expect(out.lines()[0]).toEqual({
      level: 'info',
      time: expect.any(String) as string,
      name: 'egress-witness-test',
      event: 'request',
      headers: {
        authorization: '[redacted]',
        'x-amz-security-token': '[redacted]',
        'proxy-authorization': '[redacted]',
        host: 'sts.amazonaws.com',
      },
      config: { telemetry: { secret: '[redacted]', secret_file: '/etc/egress-witness/gw.key' } },
      credentials: [{ access_key_id: 'AKIA…MPLE', secret_key: '[redacted]' }],
      deep: { a: { b: { c: { secret: '[redacted]' } } } },
      msg: 'request',
    });
  });

  it('does not redact secret_file paths', () => {
    const { log, out } = build();
    log.info(
      {
        event: 'config',
        telemetry: { secret_file: '/etc/egress-witness/gw.key' },
        gateways: [{ id: 'gw-a', secret_file: '/etc/egress-witness/gateways/gw-a.key' }],
      },
      'x',
    );
    expect(out.lines()[0]).toMatchObject({
      telemetry: { secret_file: '/etc/egress-witness/gw.key' },
      gateways: [{ id: 'gw-a', secret_file: '/etc/egress-witness/gateways/gw-a.key' }],
    });
  });

  it('masks access keys under access_key_id, never printing the whole key', () => {
    const { log, out } = build();
    log.info({ event: 'observed', access_key_id: 'ASIAY34FZKBOKMUTVV7A', record: { access_key_id: 'AKIAIOSFODNN7EXAMPLE' } }, 'observed');
    expect(out.text()).not.toContain('ASIAY34FZKBOKMUTVV7A');
    expect(out.text()).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(out.lines()[0]).toMatchObject({ access_key_id: 'ASIA…VV7A', record: { access_key_id: 'AKIA…MPLE' } });
  });

  it('serializes errors under err with type, message and stack', () => {
    const { log, out } = build();
    log.error({ event: 'start_failed', err: new TypeError('boom') }, 'failed');
    expect(out.lines()[0]).toMatchObject({
      event: 'start_failed',
      err: { type: 'TypeError', message: 'boom', stack: expect.stringContaining('TypeError: boom') },
    });
  });

  // BUG (common/log/logger.ts): redaction runs in formatters.log only, not formatters.bindings, so
  // fields bound with logger.child({...}) are written unredacted.
  it('redacts fields bound on a child logger', () => {
    const { log, out } = build();
    log.child({ authorization: SECRETS[0], secret: SECRETS[4] }).info({ event: 'x' }, 'child');
    for (const s of SECRETS) expect(out.text()).not.toContain(s);
  });

  // BUG (common/log/redact.ts, via the logger): see redact.test.ts — an Error's own properties are not redacted.
  it('redacts secrets carried on a logged error', () => {
    const { log, out } = build();
    log.error({ event: 'x', err: Object.assign(new Error('denied'), { headers: { authorization: SECRETS[0] } }) }, 'x');
    expect(out.text()).not.toContain(SECRETS[0]);
  });
});
