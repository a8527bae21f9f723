/**
 * Errors that point at a doc section ("… (docs/configuration.md#listen-addresses)") point at one
 * that exists: every `docs/FILE.md#anchor` written in the sources resolves to a heading of that
 * file, as GitHub renders its anchors.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AGENT_FILE, DETECTOR_FILE } from '../../../common/config/kinds.js';
import { markdownAnchors } from '../../helpers/markdown.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SOURCE_DIRS = ['agent', 'cli', 'common', 'detector', 'protocol'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every `docs/x.md#anchor` in the sources, with where it is written. */
function docLinks(): { file: string; doc: string; anchor: string }[] {
  return SOURCE_DIRS.flatMap((d) => sources(join(root, d))).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/docs\/([\w/-]+\.md)#([\p{L}\p{N}_-]+)/gu)].map((m) => ({
      file: relative(root, file),
      doc: m[1]!,
      anchor: m[2]!,
    })),
  );
}

function anchorsOf(doc: string): Set<string> {
  return markdownAnchors(readFileSync(join(root, 'docs', doc), 'utf8'));
}

describe('doc sections named by messages', () => {
  it('every docs/FILE.md#anchor in the sources is a heading of that file', () => {
    const links = docLinks();
    // The messages of the first hour: the shipper's, the listeners', the CLI's.
    for (const anchor of ['detector-tls-in-five-commands', 'gateways', 'telemetry', 'listen-addresses', 'what-sighup-reloads'])
      expect(links.map((l) => l.anchor)).toContain(anchor);
    const broken = links.filter((l) => !anchorsOf(l.doc).has(l.anchor)).map((l) => `${l.file}: docs/${l.doc}#${l.anchor}`);
    expect(broken).toEqual([]);
  });

  it('the wrong kind of configuration file points at the section of the kind wanted', () => {
    const anchors = anchorsOf('configuration.md');
    for (const kind of [AGENT_FILE, DETECTOR_FILE]) expect(anchors).toContain(`${kind.name}-file`);
  });
});
