// @ts-check
/**
 * Folder-level import cycles, as an ESLint rule.
 *
 * A folder is a unit of the design (agent/proxy, detector/store, …): the first two path segments of a
 * source file under the project's source roots, so detector/correlate/rules belongs to detector/correlate
 * and a file at a root (agent/app.ts) to the root itself. Folder A depending on folder B while B depends
 * on A — through any chain of folders — means neither can be understood, tested or replaced alone.
 *
 * The graph is read from disk once per lint run (every relative `import`, `import type`, `export … from`
 * and `import()` of every .ts file under the roots); the rule then reports each import in the linted
 * file whose edge lies on a cycle, with one cycle it closes and the files that make its other edges.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export const SOURCE_ROOTS = ['agent', 'detector', 'protocol', 'common', 'cli'];

/** The folder a project-relative path (POSIX separators) belongs to. */
export function folderOf(relFile) {
  const dirs = relFile.split('/').slice(0, -1);
  return dirs.slice(0, 2).join('/');
}

function listSources(root, roots) {
  const files = [];
  const walk = (rel) => {
    const abs = path.join(root, rel);
    if (!fs.existsSync(abs)) return;
    for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(child);
    }
  };
  for (const r of roots) walk(r);
  return files;
}

/**
 * folder → (folder → files making that edge). Only relative specifiers that stay inside the source roots
 * count; packages and node: built-ins are not folders of ours.
 * @returns {Map<string, Map<string, string[]>>}
 */
export function folderGraph(root, roots = SOURCE_ROOTS) {
  const graph = new Map();
  for (const file of listSources(root, roots)) {
    const from = folderOf(file);
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(path.join(root, file), 'utf8'), true, true);
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), fileName));
      if (target.startsWith('..') || !roots.includes(target.split('/')[0] ?? '')) continue;
      const to = folderOf(target);
      if (to === from) continue;
      if (!graph.has(from)) graph.set(from, new Map());
      const edges = graph.get(from);
      if (!edges.has(to)) edges.set(to, []);
      const files = edges.get(to);
      if (!files.includes(file)) files.push(file);
    }
  }
  return graph;
}

/** Strongly connected components with more than one folder (Tarjan), each as a set of folders. */
export function folderCycles(graph) {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  const nodes = new Set([...graph.keys(), ...[...graph.values()].flatMap((edges) => [...edges.keys()])]);
  const visit = (v) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const component = new Set();
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.add(w);
      } while (w !== v);
      if (component.size > 1) components.push(component);
    }
  };
  for (const n of [...nodes].sort()) if (!index.has(n)) visit(n);
  return components;
}

/** The shortest folder path from `start` to `goal` inside one component (BFS), or undefined. */
export function folderPath(graph, component, start, goal) {
  const previous = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    if (v === goal) {
      const out = [];
      for (let at = goal; at !== undefined; at = previous.get(at)) out.unshift(at);
      return out;
    }
    for (const w of graph.get(v)?.keys() ?? []) {
      if (component.has(w) && !previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return undefined;
}

/** Every cycle-closing edge as "from → to: a path back (and the files making it)" — for scripts and tests. */
export function describeCycles(root, roots = SOURCE_ROOTS) {
  const graph = folderGraph(root, roots);
  const lines = [];
  for (const component of folderCycles(graph)) {
    for (const from of [...component].sort()) {
      for (const [to, files] of graph.get(from) ?? []) {
        if (!component.has(to)) continue;
        const back = folderPath(graph, component, to, from) ?? [];
        lines.push(`${from} → ${to} (${files.join(', ')}) closes ${[from, ...back].join(' → ')}`);
      }
    }
  }
  return lines;
}

const analyses = new Map();
function analysisFor(root) {
  let a = analyses.get(root);
  if (!a) {
    const graph = folderGraph(root);
    const componentOf = new Map();
    for (const component of folderCycles(graph)) for (const folder of component) componentOf.set(folder, component);
    a = { graph, componentOf };
    analyses.set(root, a);
  }
  return a;
}

/** @type {import('eslint').Rule.RuleModule} */
const noFolderCycle = {
  meta: {
    type: 'problem',
    docs: { description: 'no folder imports a folder that imports it back, through any chain of folders' },
    schema: [],
    messages: {
      cycle:
        '{{from}} → {{to}} closes a folder cycle: {{cycle}} (back through {{files}}). Move what both need into a folder neither imports back, or inject it.',
    },
  },
  create(context) {
    const root = context.cwd;
    const rel = path.relative(root, context.filename).split(path.sep).join('/');
    if (rel.startsWith('..') || !SOURCE_ROOTS.includes(rel.split('/')[0] ?? '')) return {};
    const { graph, componentOf } = analysisFor(root);
    const from = folderOf(rel);
    const component = componentOf.get(from);
    if (!component) return {};
    const check = (node, source) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const to = folderOf(path.posix.normalize(path.posix.join(path.posix.dirname(rel), source)));
      if (to === from || !component.has(to)) return;
      const back = folderPath(graph, component, to, from) ?? [to, from];
      const files = back
        .slice(0, -1)
        .map((f, i) => graph.get(f)?.get(back[i + 1] ?? '')?.[0])
        .filter(Boolean);
      context.report({ node, messageId: 'cycle', data: { from, to, cycle: [from, ...back].join(' → '), files: files.join(', ') } });
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value),
    };
  },
};

export default { rules: { 'no-folder-cycle': noFolderCycle } };
