// Clients never import servers (STYLE.md 12): wsh and wctl reach only src/api, src/crypto, src/time, src/cli and
// the atomic file writer, so they stay small and cannot touch a backend or a CA key by accident.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..');
const IMPORT =
  /(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|import\s+['"](\.[^'"]+)['"]/g;

/** The relative paths a module's text imports or re-exports, type-only imports included. */
function importSpecifiers(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

/** The files a file imports by relative path, as absolute paths. */
function importsOf(file: string): string[] {
  return importSpecifiers(readFileSync(file, 'utf8')).map((spec) => resolve(dirname(file), spec));
}

function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const target of importsOf(file)) visit(target);
  };
  visit(entry);
  return seen;
}

function sourceFiles(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full, pattern);
    return pattern.test(name) ? [full] : [];
  });
}

const ALLOWED = [
  'src/api/',
  'src/crypto/',
  'src/time/',
  'src/cli/wsh/',
  'src/cli/wctl/',
  'src/cli/run.ts',
  'src/cli/table.ts',
  'src/cli/prompt.ts',
  'src/cli/recordings.ts',
  'src/cli/identity-file.ts',
  'src/files/atomic-write.ts',
];

describe('client/server separation', () => {
  for (const client of ['wsh', 'wctl']) {
    it(`keeps ${client} free of server code`, () => {
      const files = [...reachable(join(root, 'src/cli', client, 'main.ts'))].map((f) => relative(root, f));
      assert.ok(files.length > 3, 'the import walk found the client');
      const bad = files.filter((f) => !ALLOWED.some((a) => f.startsWith(a)));
      assert.deepEqual(bad, [], `${client} imports server code`);
    });
  }
});

// The web UI runs in the browser and is built on its own. It shares the wire contract with the servers (src/api:
// resource types, the web API's bodies, the asciicast codec) and nothing else, which would drag server internals
// into a page; and what a page runs from src/ (type-only imports are erased by the build) must load no Node module.
const RUNTIME_IMPORT =
  /(?:import|export)\s+(?!type\b)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

/** Every module a file loads at run time, packages included; `import type` and `export type` left out. */
function runtimeSpecifiers(text: string): string[] {
  return [...text.matchAll(RUNTIME_IMPORT)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

describe('web UI separation', () => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.(ts|tsx)$/.test(name)) files.push(full);
    }
  };
  walk(join(root, 'web/src'));
  const inside = (dir: string, target: string) => !relative(join(root, dir), target).split('/').includes('..');

  it('imports from src/ only the wire contract, src/api', () => {
    assert.ok(files.length > 5, 'the walk found the web UI');
    const bad = files.flatMap((f) =>
      importsOf(f)
        .filter((target) => !inside('web', target) && !inside('src/api', target))
        .map((target) => `${relative(root, f)} -> ${relative(root, target)}`),
    );
    assert.deepEqual(bad, [], 'web/ imports from outside web/ and src/api/');
  });

  it('runs nothing from src/ that loads a Node module or a package other than zod', () => {
    const reached = new Set<string>();
    const visit = (file: string) => {
      for (const spec of runtimeSpecifiers(readFileSync(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        if (inside('web', target) || reached.has(target)) continue;
        reached.add(target);
        visit(target);
      }
    };
    for (const f of files.filter((f) => !/\.test\.tsx?$/.test(f))) visit(f);
    assert.ok(reached.has(join(root, 'src/api/asciicast.ts')), 'the walk sees the player run the asciicast codec');
    const bad = [...reached].flatMap((f) =>
      runtimeSpecifiers(readFileSync(f, 'utf8'))
        .filter((spec) => !spec.startsWith('.') && spec !== 'zod')
        .map((spec) => `${relative(root, f)} -> ${spec}`),
    );
    assert.deepEqual(bad, [], 'the browser bundle would load these');
  });
});

/** Import edges of src/ (paths relative to the repository), tests included: a test sits beside its module. */
function srcGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(join(root, 'src'), /\.ts$/)) {
    graph.set(
      relative(root, file),
      importsOf(file).map((target) => relative(root, target)),
    );
  }
  return graph;
}

/**
 * Every import cycle, one per strongly connected set of modules (Tarjan), each shown as its shortest loop through
 * the set's first module, `a.ts -> b.ts -> a.ts`, followed by the set's other modules if the loop misses some.
 */
function importCycles(graph: Map<string, string[]>): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const members = new Set<string>();
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      members.add(w);
      if (w === v) break;
    }
    if (members.size === 1 && !graph.get(v)!.includes(v)) return;
    const loop = loopThrough([...members].sort()[0]!, members, graph);
    const rest = [...members].filter((m) => !loop.includes(m)).sort();
    cycles.push(rest.length ? `${loop.join(' -> ')} (tangled with ${rest.join(', ')})` : loop.join(' -> '));
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles.sort();
}

/** The shortest path from `start` back to itself inside `members` (breadth first). */
function loopThrough(start: string, members: Set<string>, graph: Map<string, string[]>): string[] {
  const from = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]!;
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(from.get(path[0]!)!);
        return [...path, start];
      }
      if (!from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

// A cycle makes a module's meaning depend on one that depends on it: neither can be read, tested or moved
// alone, and a runtime cycle leaves one side seeing the other half-initialised. Type-only imports count too,
// since a cycle of types is the same tangle for a reader; the shared piece goes below both instead.
describe('import graph', () => {
  it('finds a cycle and names it, type-only imports included', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts', 'd.ts']],
      ['c.ts', ['a.ts', 'f.ts']],
      ['d.ts', []],
      ['e.ts', ['e.ts']],
      ['f.ts', ['b.ts']],
    ]);
    assert.deepEqual(importCycles(graph), ['a.ts -> b.ts -> c.ts -> a.ts (tangled with f.ts)', 'e.ts -> e.ts']);
    assert.deepEqual(
      importCycles(
        new Map([
          ['a.ts', ['b.ts']],
          ['b.ts', []],
        ]),
      ),
      [],
    );
    const text = "import type { ConnContext } from './connection.ts';\nexport { x } from '../y.ts';\nimport 'z';";
    assert.deepEqual(importSpecifiers(text), ['./connection.ts', '../y.ts']);
  });

  it('has no import cycles in src/', () => {
    const graph = srcGraph();
    assert.ok(graph.size > 100, 'the walk found src/');
    assert.deepEqual(importCycles(graph), [], 'import cycles in src/');
  });

  it('finds a cycle between packages and names the imports that close it', () => {
    const graph = new Map([
      ['src/a/x.ts', ['src/b/y.ts']],
      ['src/b/y.ts', ['src/b/z.ts']],
      ['src/b/z.ts', ['src/a/w.ts']],
      ['src/a/w.ts', []],
      ['src/a/x.test.ts', ['src/c/v.ts']],
      ['src/c/v.ts', ['src/a/w.ts']],
    ]);
    assert.deepEqual(packageCycles(graph), [
      'src/a -> src/b -> src/a (src/a/x.ts -> src/b/y.ts; src/b/z.ts -> src/a/w.ts)',
    ]);
  });

  it('has no import cycles between the packages of src/', () => {
    const graph = srcGraph();
    assert.deepEqual(
      graph.get(ERROR_CATALOGUE)!.filter((target) => target.startsWith('src/')),
      [],
      'the error catalogue imports nothing of src/',
    );
    assert.deepEqual(packageCycles(graph), [], 'import cycles between packages of src/');
  });
});

// A package is a folder of src/ (src/cli is one). The error catalogue is a package of its own: it imports nothing,
// and time and files, which src/api's schemas use, sit on it alone. Tests are left out, as for the package
// boundaries below: a test may wire packages that its own package's code never imports.
const ERROR_CATALOGUE = 'src/api/errors.ts';

function packageOf(file: string): string {
  return file === ERROR_CATALOGUE ? file : file.split('/').slice(0, 2).join('/');
}

/** Each cycle between packages as `importCycles` names it, then one file import for each step of the loop. */
function packageCycles(files: Map<string, string[]>): string[] {
  const graph = new Map<string, string[]>();
  const witness = new Map<string, string>();
  for (const [file, targets] of files) {
    if (file.endsWith('.test.ts')) continue;
    const from = packageOf(file);
    if (!graph.has(from)) graph.set(from, []);
    for (const target of targets) {
      const to = packageOf(target);
      if (to === from || !files.has(target)) continue;
      if (!graph.get(from)!.includes(to)) graph.get(from)!.push(to);
      if (!witness.has(`${from} ${to}`)) witness.set(`${from} ${to}`, `${file} -> ${target}`);
    }
  }
  return importCycles(graph).map((cycle) => {
    const loop = cycle.split(' (')[0]!.split(' -> ');
    const steps = loop.slice(1).map((to, i) => witness.get(`${loop[i]} ${to}`)!);
    return `${cycle} (${steps.join('; ')})`;
  });
}

// ssh2's underscore-prefixed fields are its internals and change between versions without notice. Ward reaches
// them in one module, so upgrading ssh2 is one reviewed diff: patches/ssh2+<version>.patch plus that module.
describe('ssh2 internals', () => {
  const ADAPTER = 'src/ssh/ssh2hooks.ts';
  /** The names of the fields ssh2 sets on its objects (`this._name = ...`), read from the installed ssh2. */
  const ssh2Fields = (): Set<string> => {
    const lib = join(root, 'node_modules/ssh2/lib');
    const fields = sourceFiles(lib, /\.js$/).flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(/\bthis\.(_[A-Za-z]\w*)\s*=[^=]/g)].map((m) => m[1]!),
    );
    return new Set(fields);
  };
  /** `file:line name` for every token in `dirs` that is one of `fields`. */
  const uses = (fields: Set<string>, dirs: string[]): string[] => {
    const token = /(?<![\w$])_[A-Za-z]\w*/g;
    return dirs
      .flatMap((dir) => sourceFiles(join(root, dir), /\.(ts|tsx|js|mjs)$/))
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .flatMap((line, i) =>
            [...line.matchAll(token)]
              .filter((m) => fields.has(m[0]))
              .map((m) => `${relative(root, file)}:${i + 1} ${m[0]}`),
          ),
      );
  };

  it('are touched by src/ssh/ssh2hooks.ts and no other file in src/, bench/, test/, scripts/ or web/src/', () => {
    const fields = ssh2Fields();
    assert.ok(fields.size > 50, 'read the field names from node_modules/ssh2/lib');
    const found = uses(fields, ['src', 'bench', 'test', 'scripts', 'web/src']);
    assert.ok(
      found.some((u) => u.startsWith(`${ADAPTER}:`)),
      'the scan sees the adapter reach ssh2 internals',
    );
    assert.deepEqual(
      found.filter((u) => !u.startsWith(`${ADAPTER}:`)),
      [],
      'ssh2 internals outside the adapter',
    );
  });
});

// Services share code through packages below them, never sideways (STYLE.md 21): the proxy and the node check a
// user certificate with src/rbac, not with each other's code; only auth touches the backend; the tunnel knows no
// auth; the contract (src/api) sits on the time leaf alone, crypto and backend on src/api and the leaf modules
// (time, files), which sit on the error catalogue.
// Tests are exempt: a test may wire a real auth server to a proxy.
const BOUNDARIES: Array<{ from: string; never?: string[]; only?: string[] }> = [
  { from: 'src/proxy/', never: ['src/node/', 'src/auth/', 'src/backend/', 'src/services/'] },
  { from: 'src/node/', never: ['src/proxy/', 'src/auth/', 'src/backend/', 'src/services/'] },
  { from: 'src/tunnel/', never: ['src/auth/', 'src/backend/', 'src/node/', 'src/proxy/'] },
  { from: 'src/host/', never: ['src/auth/', 'src/backend/', 'src/node/', 'src/proxy/'] },
  { from: 'src/rbac/', never: ['src/auth/', 'src/backend/', 'src/node/', 'src/proxy/'] },
  { from: 'src/api/', only: ['src/api/', 'src/time/'] },
  { from: 'src/crypto/', only: ['src/crypto/', 'src/api/', 'src/time/'] },
  { from: 'src/backend/', only: ['src/backend/', 'src/api/', 'src/time/', 'src/files/'] },
  { from: 'src/time/', only: ['src/time/', 'src/api/errors.ts'] },
  { from: 'src/files/', only: ['src/files/', 'src/api/errors.ts'] },
  { from: 'src/ratelimit/', only: ['src/ratelimit/', 'src/time/'] },
];

describe('package boundaries', () => {
  const edges = [...srcGraph()]
    .filter(([file]) => !file.endsWith('.test.ts'))
    .flatMap(([file, targets]) => targets.map((target) => ({ file, target })));

  for (const rule of BOUNDARIES) {
    const what = rule.never ? `never imports ${rule.never.join(', ')}` : `imports only ${rule.only!.join(', ')}`;
    it(`${rule.from} ${what}`, () => {
      const mine = edges.filter(({ file }) => file.startsWith(rule.from));
      assert.ok(mine.length > 0, `the walk found ${rule.from}`);
      const bad = mine
        .filter(({ target }) =>
          rule.never ? rule.never.some((p) => target.startsWith(p)) : !rule.only!.some((p) => target.startsWith(p)),
        )
        .map(({ file, target }) => `${file} -> ${target}`);
      assert.deepEqual(bad, [], `${rule.from} crosses a package boundary`);
    });
  }
});

// Each kind of state has one store in src/services that owns its backend keys and its schema (STYLE.md 13): a key
// layout spread over the auth server's modules could not be read, migrated or reviewed in one place. So no code
// outside src/backend and src/services calls a Backend's state methods; it asks a store (services/stores.ts).
// Audit events are the EventStore's (append, search), reached through src/events/audit.ts's AuditLog, the one
// caller of those two outside the backend.
describe('backend access', () => {
  const CALL =
    /\bbackend\??\.(get|getRange|create|put|update|compareAndSwap|delete|deleteRange|keepAlive|watch|search|append)\(/g;
  /** `file:line` of every Backend state call in the non-test sources under `dir`. */
  const backendCalls = (dir: string): string[] =>
    sourceFiles(join(root, dir), /(?<!\.test)\.ts$/).flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (line.match(CALL) ? [`${relative(root, file)}:${i + 1}`] : [])),
    );

  it('sees the stores call the backend', () => {
    assert.ok(backendCalls('src/services').length > 10, 'the scan finds the stores reading and writing the backend');
    assert.ok('await auth.backend.put({ key })'.match(CALL) && 'this.backend?.deleteRange(p)'.match(CALL));
  });

  it('happens only in src/backend and src/services', () => {
    const outside = readdirSync(join(root, 'src'))
      .filter((d) => d !== 'backend' && d !== 'services' && statSync(join(root, 'src', d)).isDirectory())
      .flatMap((d) => backendCalls(`src/${d}`));
    assert.deepEqual(outside, [], 'raw backend calls outside a store');
  });
});

// STYLE.md 20: lines stay under 120 characters. Biome breaks code; what it cannot break is listed here.
const MAX_LINE = 120;
/** Lines that cannot be split without changing what they are: regex literals (an exact expected message or value). */
const LONG_LINES_ALLOWED = new Map<string, number>([
  ['src/crypto/x509.test.ts', 2], // openssl's subjectAltName text as a regex
  ['test/architecture.test.ts', 1], // RUNTIME_IMPORT, a regex
  ['test/cluster.test.ts', 1], // wsh's exact error line as a regex
]);

function longLines(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((line, i) => (line.length > MAX_LINE ? [`${relative(root, file)}:${i + 1}`] : []));
}

describe('line length', () => {
  it('has no line over 120 characters in src, test, bench or web/src but the few listed', () => {
    const files = ['src', 'test', 'bench', 'web/src']
      .flatMap((dir) => sourceFiles(join(root, dir), /\.tsx?$/))
      .filter((file) => !relative(root, file).startsWith('src/api/gen/'));
    const found = new Map<string, string[]>();
    for (const file of files) {
      const lines = longLines(file);
      if (lines.length) found.set(relative(root, file), lines);
    }
    const unexpected = [...found].filter(([file, lines]) => lines.length !== (LONG_LINES_ALLOWED.get(file) ?? 0));
    assert.deepEqual(unexpected, [], 'lines over 120 characters (rewrap, or split the string with +)');
    const stale = [...LONG_LINES_ALLOWED.keys()].filter((file) => !found.has(file));
    assert.deepEqual(stale, [], 'allowed long lines that are gone: take them off LONG_LINES_ALLOWED');
  });
});
