/**
 * `egress-witness doctor --config FILE`: the first-hour checks for an agent or a detector file,
 * one line per check with the fix. Exit 1 when a check fails, 0 otherwise (warnings included).
 *
 *   agent:    config ─ node ─ files ─ listeners ─ inspection CA ─ detector (TLS trust, signature, gateway id, clock)
 *   detector: config ─ node ─ files ─ listeners ─ TLS certificate and key ─ store
 */
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { readFile, stat, access, constants } from 'node:fs/promises';
import net from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { formatProblem } from '../../common/config/load.js';
import { listenErrorMessage } from '../../common/admin/admin-server.js';
import { isLoopbackHost } from '../../common/cidr/ip.js';
import { readSecretFile } from '../../common/runtime/config-file.js';
import type { Output } from '../../common/runtime/output.js';
import { packageEngines, packageVersion } from '../../common/runtime/version.js';
import { meetsEngines } from '../../common/runtime/node-support.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { preflightAgent } from '../../agent/preflight.js';
import { readCaFiles } from '../../agent/tls/ca-files.js';
import { trustedSecureContext } from '../../agent/tls/trust-store.js';
import { answerResult, describeFailure, errorResult, speaksTls } from '../../agent/ship/send-failures.js';
import { BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER, signatureHeader } from '../../protocol/signature.js';
import { REFUSAL_HEADER } from '../../protocol/telemetry-status.js';
import { SCHEMA_VERSION, type TelemetryBatch } from '../../protocol/telemetry.js';
import type { DetectorConfig } from '../../detector/config/schema.js';
import { preflightDetector } from '../../detector/preflight.js';
import { storeFileProblem } from '../../detector/decisions/store-file.js';
import { loadAnyConfig } from './load-any-config.js';

export interface Check {
  status: 'ok' | 'warn' | 'FAIL';
  name: string;
  detail: string;
}

const TLS_RECIPE = 'docs/operations.md#detector-tls-in-five-commands';
/** Clocks further apart than this are worth a warning (the detector's ingest.clock_skew defaults to 5 min). */
const SKEW_WARN_MS = 30_000;

export async function doctorCommand(o: { config: string; timeoutMs?: number }, out: Output): Promise<number> {
  const checks: Check[] = [];
  const report = (c: Check): void => {
    checks.push(c);
    out.stdout(`${c.status.padEnd(4)}  ${c.name}: ${c.detail}\n`);
  };
  const loaded = await loadAnyConfig(o.config);
  if (!loaded.ok) {
    for (const p of loaded.problems) report({ status: 'FAIL', name: 'config', detail: formatProblem(p) });
    out.stdout(`${o.config}: fix the configuration first (egress-witness check-config ${o.config} lists the same problems)\n`);
    return 1;
  }
  const v = loaded.value;
  report({ status: 'ok', name: 'config', detail: `${o.config} is a valid ${v.kind} configuration` });
  const node = nodeCheck(process.version, packageEngines());
  if (node !== null) report(node);
  const timeoutMs = o.timeoutMs ?? 5_000;
  if (v.kind === 'agent') await agentChecks(v.config, report, timeoutMs);
  else await detectorChecks(v.config, report);
  const failed = checks.filter((c) => c.status === 'FAIL').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  out.stdout(
    failed > 0
      ? `${failed} check${failed === 1 ? '' : 's'} failed${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}\n`
      : `all checks passed${warned ? ` (${warned} warning${warned === 1 ? '' : 's'})` : ''}\n`,
  );
  return failed > 0 ? 1 : 0;
}

type Report = (c: Check) => void;

/**
 * The Node.js running this command (and, installed alike, the daemons) against package.json's
 * engines: an older release runs, but is not supported (a warning); null when either is unknown.
 */
export function nodeCheck(version: string, engines: string): Check | null {
  const meets = meetsEngines(version, engines);
  if (meets === null) return null;
  return meets
    ? { status: 'ok', name: 'node', detail: `Node.js ${version} is a supported release (${engines})` }
    : {
        status: 'warn',
        name: 'node',
        detail:
          `Node.js ${version} is older than the supported releases (${engines}: the 22 and 24 LTS lines); ` +
          'fine for a test tree, but run the daemons on Node.js 22 or 24 (systemd/install.sh --node PATH)',
      };
}

async function fileChecks(problems: Promise<{ path: string; message: string }[]>, report: Report): Promise<void> {
  const list = await problems;
  for (const p of list) report({ status: 'FAIL', name: 'files', detail: formatProblem(p) });
  if (list.length === 0) report({ status: 'ok', name: 'files', detail: 'every referenced file is there, readable, with safe permissions' });
}

/** Whether host:port can be bound now (and released at once). */
async function listenCheck(key: string, address: { host: string; port: number }, daemon: string, report: Report): Promise<void> {
  const where = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  if (address.port === 0) {
    report({ status: 'ok', name: key, detail: `${where}: any free port` });
    return;
  }
  const server = net.createServer();
  try {
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen({ host: address.host, port: address.port, exclusive: true }, () => res());
    });
    report({ status: 'ok', name: key, detail: `${where} is free` });
  } catch (err) {
    const code = (err as { code?: string }).code;
    report(
      code === 'EADDRINUSE'
        ? {
            status: 'warn',
            name: key,
            detail: `${where} is in use: fine if the ${daemon} itself is running; otherwise stop the process that holds it or set ${key} to a free address (docs/configuration.md#listen-addresses)`,
          }
        : { status: 'FAIL', name: key, detail: listenErrorMessage(key, address.host, address.port, err) },
    );
  } finally {
    if (server.listening) await new Promise((r) => server.close(r));
  }
}

async function agentChecks(c: AgentConfig, report: Report, timeoutMs: number): Promise<void> {
  await fileChecks(preflightAgent(c), report);
  await listenCheck('proxy.listen', c.proxy.listen, 'agent', report);
  await listenCheck('admin.listen', c.admin.listen, 'agent', report);
  if (c.transparent) await listenCheck('transparent.listen', c.transparent.listen, 'agent', report);
  if (c.inspect) {
    try {
      const ca = await readCaFiles(c.inspect.ca_cert, c.inspect.ca_key);
      const days = Math.floor((ca.notAfter.getTime() - Date.now()) / 86_400_000);
      report(
        days < 30
          ? {
              status: 'warn',
              name: 'inspection CA',
              detail: `expires in ${days} days (${ca.notAfter.toISOString()}); make a new one (egress-witness ca init) and roll it out to the clients`,
            }
          : {
              status: 'ok',
              name: 'inspection CA',
              detail: `inspect.ca_cert and inspect.ca_key match; valid until ${ca.notAfter.toISOString()}`,
            },
      );
    } catch (err) {
      report({ status: 'FAIL', name: 'inspection CA', detail: (err as Error).message });
    }
  }
  const url = c.telemetry.detector_url;
  if (url === null) {
    report({
      status: 'ok',
      name: 'detector',
      detail: 'telemetry.detector_url is not set: nothing is shipped (metrics, logs and telemetry.file only)',
    });
    return;
  }
  const u = new URL(url);
  if (u.protocol === 'http:' && !isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')))
    report({
      status: 'warn',
      name: 'detector TLS',
      detail: `telemetry.detector_url is http:// to another host: access key ids and client addresses cross the network in clear; give the detector a certificate and use https:// (${TLS_RECIPE})`,
    });
  await heartbeatCheck(c, u, report, timeoutMs);
}

/** One signed batch with one heartbeat, as the agent sends them: trust, signature, gateway id and clock in one request. */
async function heartbeatCheck(c: AgentConfig, url: URL, report: Report, timeoutMs: number): Promise<void> {
  let secret: Buffer;
  try {
    if (c.telemetry.secret_file === null) throw new Error('telemetry.secret_file is not set');
    secret = await readSecretFile(c.telemetry.secret_file, 'the telemetry HMAC secret');
  } catch (err) {
    report({ status: 'FAIL', name: 'detector', detail: `cannot sign a heartbeat: ${(err as Error).message}` });
    return;
  }
  const now = Date.now();
  const iso = new Date(now).toISOString();
  const batch: TelemetryBatch = {
    schemaVersion: SCHEMA_VERSION,
    batchId: `doctor-${randomBytes(8).toString('hex')}`,
    gatewayId: c.gateway.id,
    agent: { version: packageVersion(), startedAt: iso },
    sequence: 0,
    egressCidrs: c.gateway.egress_cidrs,
    sentAt: iso,
    records: [
      {
        type: 'heartbeat',
        schema: SCHEMA_VERSION,
        gatewayId: c.gateway.id,
        time: iso,
        agentVersion: packageVersion(),
        startedAt: iso,
        uptimeSeconds: 0,
        counts: {},
        spool: { batches: 0, bytes: 0 },
        inspect: c.inspect !== null,
      },
    ],
  };
  const body = gzipSync(JSON.stringify(batch));
  let extraCa: string | null = null;
  if (c.upstream.ca_file) extraCa = await readFile(c.upstream.ca_file, 'utf8').catch(() => null);
  const dispatcher = new Agent({
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connectTimeout: timeoutMs,
    connect: { secureContext: trustedSecureContext(extraCa) },
  });
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher,
      body,
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        [GATEWAY_HEADER]: c.gateway.id,
        [BATCH_HEADER]: batch.batchId,
        [SIGNATURE_HEADER]: signatureHeader(secret, Math.floor(now / 1000), body),
      },
    });
    await res.body.text().catch(() => '');
    const header = (name: string): string | undefined => {
      const h = res.headers[name];
      return Array.isArray(h) ? h[0] : h;
    };
    const refusal = header(REFUSAL_HEADER);
    const result = answerResult(res.statusCode, refusal ? { refusal } : {}, Date.now());
    if (result.outcome.kind === 'success') {
      report({
        status: 'ok',
        name: 'detector',
        detail: `${url.origin} accepted a signed heartbeat from gateway ${c.gateway.id}${url.protocol === 'https:' ? ' over trusted TLS' : ''}`,
      });
      const date = Date.parse(header('date') ?? '');
      if (Number.isFinite(date)) {
        // The Date header has whole seconds: a difference under 2 s is rounding.
        const skew = Date.now() - date;
        report(
          Math.abs(skew) > SKEW_WARN_MS
            ? {
                status: 'warn',
                name: 'clock',
                detail: `this host's clock is ${Math.round(Math.abs(skew) / 1000)} s ${skew > 0 ? 'ahead of' : 'behind'} the detector's: run NTP on both (the detector refuses signatures beyond its ingest.clock_skew, and correlation matches times)`,
              }
            : { status: 'ok', name: 'clock', detail: `within ${Math.max(1, Math.ceil(Math.abs(skew) / 1000))} s of the detector's` },
        );
      }
      return;
    }
    report({
      status: 'FAIL',
      name: 'detector',
      detail: describeFailure(result, { url, gatewayId: c.gateway.id }).message.replace(/; batches stay.*$/, ''),
    });
  } catch (err) {
    const result = await errorResult(err, url, () => speaksTls(url, timeoutMs));
    if (result.problem !== null) {
      report({
        status: 'FAIL',
        name: 'detector',
        detail: describeFailure(result, { url, gatewayId: c.gateway.id }).message.replace(/; batches stay.*$/, ''),
      });
      return;
    }
    const code = (err as { code?: string }).code ?? (err as Error).message;
    report({
      status: 'FAIL',
      name: 'detector',
      detail: `cannot reach ${url.origin} (${code}): is the detector running and listening there? check telemetry.detector_url and the detector's listen`,
    });
  } finally {
    await dispatcher.close();
  }
}

async function detectorChecks(c: DetectorConfig, report: Report): Promise<void> {
  await fileChecks(preflightDetector(c), report);
  await listenCheck('listen', c.listen, 'detector', report);
  await listenCheck('admin.listen', c.admin.listen, 'detector', report);
  if (c.tls.cert && c.tls.key) {
    try {
      const cert = new X509Certificate(await readFile(c.tls.cert));
      const key = createPrivateKey(await readFile(c.tls.key));
      const notAfter = new Date(cert.validTo);
      if (!cert.checkPrivateKey(key))
        report({ status: 'FAIL', name: 'tls', detail: 'tls.key does not match tls.cert (the key of another certificate?)' });
      else if (notAfter.getTime() < Date.now() || new Date(cert.validFrom).getTime() > Date.now())
        report({
          status: 'FAIL',
          name: 'tls',
          detail: `tls.cert is valid only from ${cert.validFrom} to ${cert.validTo}: renew it (${TLS_RECIPE})`,
        });
      else
        report({
          status: 'ok',
          name: 'tls',
          detail: `tls.cert and tls.key match; names ${cert.subjectAltName ?? '(none: agents cannot verify it)'}; valid until ${notAfter.toISOString()}; agents trust its CA with upstream.ca_file`,
        });
    } catch (err) {
      report({ status: 'FAIL', name: 'tls', detail: `cannot read tls.cert / tls.key: ${(err as Error).message}` });
    }
  } else if (!isLoopbackHost(c.listen.host)) {
    report({
      status: 'warn',
      name: 'tls',
      detail: `listen ${c.listen.text} is reachable from other hosts without TLS: telemetry and the bearer token cross the network in clear; set tls.cert and tls.key (${TLS_RECIPE})`,
    });
  }
  const path = c.store.path;
  const missing = await stat(path).then(
    () => false,
    () => true,
  );
  if (missing) {
    const dir = dirname(isAbsolute(path) ? path : resolve(path));
    const writable = await access(dir, constants.W_OK).then(
      () => true,
      () => false,
    );
    report(
      writable
        ? { status: 'ok', name: 'store', detail: `store.path ${path} does not exist yet: the detector creates it when it first starts` }
        : {
            status: 'FAIL',
            name: 'store',
            detail: `store.path ${path}: its folder ${dir} is missing or not writable by this user; create it for the detector's user (install -d -o egress-witness ${dir})`,
          },
    );
    return;
  }
  const problem = await storeFileProblem(path);
  report(
    problem === null
      ? { status: 'ok', name: 'store', detail: `store.path ${path} is a detector store` }
      : { status: 'FAIL', name: 'store', detail: `store.path ${problem}` },
  );
}
