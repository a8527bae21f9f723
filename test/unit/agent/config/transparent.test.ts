/** The `transparent:` section: absent by default, `listen` required inside it, every problem as `path: reason`. */
import { describe, expect, it } from 'vitest';
import { applyHotReload } from '../../../../common/config/hot-reload.js';
import { AGENT_HOT_KEYS } from '../../../../agent/app.js';
import { MINIMAL_AGENT_CONFIG, agentConfigText } from '../../../helpers/config-text.js';
const { load, problems } = agentConfigText;

const MINIMAL = MINIMAL_AGENT_CONFIG;

describe('agent config: transparent', () => {
  it('is absent by default (no transparent listener)', () => {
    expect(load(MINIMAL).transparent).toBeNull();
    expect(load(`${MINIMAL}transparent: null\n`).transparent).toBeNull();
  });

  it('takes listen and defaults ports to 443 and 80', () => {
    expect(load(`${MINIMAL}transparent:\n  listen: "[::]:3129"\n`).transparent).toEqual({
      listen: { host: '::', port: 3129, text: '[::]:3129' },
      ports: [443, 80],
    });
    expect(load(`${MINIMAL}transparent: {listen: ":3129", ports: [443]}\n`).transparent).toEqual({
      listen: { host: '0.0.0.0', port: 3129, text: ':3129' },
      ports: [443],
    });
  });

  it('requires listen inside the section', () => {
    expect(problems(`${MINIMAL}transparent:\n  ports: [443]\n`)).toEqual([
      'transparent.listen: required: the transparent listener address, e.g. "[::]:3129" (IPv4 and IPv6) or "0.0.0.0:3129" (line 8, column 3)',
    ]);
    expect(problems(`${MINIMAL}transparent: {}\n`)).toEqual([
      'transparent.listen: required: the transparent listener address, e.g. "[::]:3129" (IPv4 and IPv6) or "0.0.0.0:3129" (line 7, column 14)',
    ]);
  });

  it('reports every problem of the section at once, each at its path', () => {
    expect(problems(`${MINIMAL}transparent:\n  listen: 3129\n  ports: [0, "https"]\n  mode: redirect\n`)).toEqual([
      'transparent.listen: expected "host:port", got 3129 (line 8, column 11)',
      'transparent.ports[0]: port must be 1-65535 (line 9, column 11)',
      'transparent.ports[1]: expected a port number, got "https" (line 9, column 14)',
      'transparent.mode: unknown key "mode" (line 10, column 3)',
    ]);
    expect(problems(`${MINIMAL}transparent: {listen: "x:y", ports: []}\n`)).toEqual([
      'transparent.listen: "x:y" is not a listen address (use "host:port", "[::1]:port" or ":port") (line 7, column 23)',
      'transparent.ports: at least one port is required (line 7, column 37)',
    ]);
    expect(problems(`${MINIMAL}transparent: {listen: ":3129", ports: 443}\n`)).toEqual([
      'transparent.ports: expected a list of ports, got 443 (line 7, column 39)',
    ]);
  });

  it('refuses a listener on the proxy or admin socket', () => {
    expect(problems(`${MINIMAL}transparent: {listen: "0.0.0.0:3128"}\n`)).toEqual([
      'transparent.listen: "0.0.0.0:3128" collides with proxy.listen "0.0.0.0:3128": use another port (line 7, column 23)',
    ]);
    expect(problems(`${MINIMAL}transparent: {listen: "[::]:9464"}\n`)).toEqual([
      'transparent.listen: "[::]:9464" collides with admin.listen "127.0.0.1:9464": use another port (line 7, column 23)',
    ]);
    // Different hosts on the same port, and port 0 (a free port each), do not collide.
    expect(problems(`${MINIMAL}proxy: {listen: "127.0.0.1:3128"}\ntransparent: {listen: "127.0.0.2:3128"}\n`)).toEqual([]);
    expect(problems(`${MINIMAL}proxy: {listen: "127.0.0.1:0"}\ntransparent: {listen: "127.0.0.1:0"}\n`)).toEqual([]);
  });

  it('refuses redirected ports the destination policy would refuse, and duplicates', () => {
    expect(problems(`${MINIMAL}transparent: {listen: ":3129", ports: [443, 8443, 443]}\n`)).toEqual([
      'transparent.ports[1]: port 8443 would be redirected to the agent but is not in proxy.allowed_ports, so every such connection would be refused; add it there or remove it here (line 7, column 45)',
      'transparent.ports[2]: duplicate port 443 (line 7, column 51)',
    ]);
    expect(
      load(`${MINIMAL}proxy: {allowed_ports: [443, 8443]}\ntransparent: {listen: ":3129", ports: [8443]}\n`).transparent?.ports,
    ).toEqual([8443]);
  });
});

describe('agent config: transparent on reload', () => {
  const on = load(`${MINIMAL}transparent: {listen: "[::]:3129"}\n`);

  it('applies ports and names listen as needing a restart, like proxy.listen', () => {
    const next = load(`${MINIMAL}transparent: {listen: "[::]:3130", ports: [443]}\n`);
    const { effective, needsRestart } = applyHotReload(on, next, AGENT_HOT_KEYS);
    expect(effective.transparent).toEqual({ listen: { host: '::', port: 3129, text: '[::]:3129' }, ports: [443] });
    expect(needsRestart).toEqual(['transparent.listen.port', 'transparent.listen.text']);
  });

  it('switching the section on or off needs a restart and keeps the running state', () => {
    const off = load(MINIMAL);
    const switchedOn = applyHotReload(off, on, AGENT_HOT_KEYS);
    expect(switchedOn.effective.transparent).toBeNull();
    expect(switchedOn.needsRestart).toEqual([
      'transparent',
      'transparent.listen.host',
      'transparent.listen.port',
      'transparent.listen.text',
      'transparent.ports',
    ]);
    const switchedOff = applyHotReload(on, off, AGENT_HOT_KEYS);
    expect(switchedOff.effective.transparent).toEqual(on.transparent);
    expect(switchedOff.needsRestart).toContain('transparent');
  });
});
