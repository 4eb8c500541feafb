// The import graph between the folders of src/, read from the sources
// themselves, and the cycles in it (a folder cycle hides which layer is below
// which). Import specifiers are found with a regular expression over the text;
// relative ones are the only ones that can point into src/.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** folder -> folder -> the files (relative to src/) whose imports make that edge. */
export type FolderGraph = Map<string, Map<string, string[]>>;

// `import ... from 'x'`, `export ... from 'x'`, `import 'x'`, `import('x')`, `require('x')`.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"](\.{1,2}\/[^'"]*)['"]/g;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.isFile() && e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Top folder of a path under root, or '' for a file directly in it (or outside it). */
function folderOf(root: string, file: string): string {
  const rel = path.relative(root, file).split(path.sep);
  return rel.length > 1 && rel[0] !== '..' ? (rel[0] as string) : '';
}

export function folderGraph(root: string): FolderGraph {
  const graph: FolderGraph = new Map();
  for (const file of tsFiles(root)) {
    const from = folderOf(root, file);
    for (const m of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      const to = folderOf(root, path.resolve(path.dirname(file), m[1] as string));
      if (from === '' || to === '' || from === to) continue;
      const edges = graph.get(from) ?? new Map<string, string[]>();
      graph.set(from, edges);
      const files = edges.get(to) ?? [];
      edges.set(to, files);
      const rel = path.relative(root, file);
      if (!files.includes(rel)) files.push(rel);
    }
  }
  return graph;
}

/**
 * The cycles among the folders: for each import edge inside a strongly
 * connected group (Tarjan), the shortest cycle through it, each written from
 * its alphabetically first folder with that folder repeated at the end.
 */
export function folderCycles(graph: FolderGraph): string[][] {
  const next = (v: string): string[] => [...(graph.get(v)?.keys() ?? [])].sort();
  const cycles = new Map<string, string[]>();
  for (const group of stronglyConnected(graph, next)) {
    for (const u of group) {
      for (const w of next(u)) {
        if (!group.includes(w)) continue;
        const cycle = [u, ...shortestPath(w, u, group, next).slice(0, -1)];
        const first = cycle.indexOf([...cycle].sort()[0] as string);
        const rotated = [...cycle.slice(first), ...cycle.slice(0, first)];
        cycles.set(rotated.join(' '), [...rotated, rotated[0] as string]);
      }
    }
  }
  return [...cycles.keys()].sort().map((k) => cycles.get(k) as string[]);
}

function stronglyConnected(graph: FolderGraph, next: (v: string) => string[]): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    for (let w = stack.pop(); w !== undefined; w = w === v ? undefined : stack.pop()) {
      onStack.delete(w);
      group.push(w);
    }
    if (group.length > 1) groups.push(group.sort());
  };
  const nodes = new Set([...graph.keys(), ...[...graph.values()].flatMap((e) => [...e.keys()])]);
  for (const v of [...nodes].sort()) if (!index.has(v)) visit(v);
  return groups;
}

/** Folders from `from` to `to` (both included) by the fewest imports, inside the group (breadth first). */
function shortestPath(from: string, to: string, group: readonly string[], next: (v: string) => string[]): string[] {
  const prev = new Map<string, string>([[from, from]]);
  const queue = [from];
  for (let i = 0; i < queue.length && !prev.has(to); i++) {
    const v = queue[i] as string;
    for (const w of next(v)) {
      if (!group.includes(w) || prev.has(w)) continue;
      prev.set(w, v);
      queue.push(w);
    }
  }
  const path = [to];
  for (let u = to; u !== from; u = prev.get(u) as string) path.unshift(prev.get(u) as string);
  return path;
}

/** "a -> b (a/x.ts) -> a (b/y.ts)": the cycle with a file for each step. */
export function describeCycle(graph: FolderGraph, cycle: readonly string[]): string {
  const steps = cycle.slice(1).map((to, k) => {
    const from = cycle[k] as string;
    return `${to} (${graph.get(from)?.get(to)?.join(', ') ?? '?'})`;
  });
  return [cycle[0], ...steps].join(' -> ');
}
