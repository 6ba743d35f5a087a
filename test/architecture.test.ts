// Clients never import servers (STYLE.md 12): wsh and wctl reach only src/api, src/crypto and src/cli,
// so they stay small and cannot touch a backend or a CA key by accident.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..');
const IMPORT = /(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|import\s+['"](\.[^'"]+)['"]/g;

function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) visit(resolve(dirname(file), (m[1] ?? m[2] ?? m[3])!));
  };
  visit(entry);
  return seen;
}

const ALLOWED = ['src/api/', 'src/crypto/', 'src/cli/wsh/', 'src/cli/wctl/', 'src/cli/run.ts', 'src/cli/table.ts', 'src/cli/prompt.ts', 'src/cli/recordings.ts', 'src/events/asciicast.ts'];

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

// The web UI runs in the browser and is built on its own: it shares no code with the servers (which
// would drag node: modules into the bundle, or server internals into a page).
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

  it('keeps web/ free of imports from src/', () => {
    assert.ok(files.length > 5, 'the walk found the web UI');
    const bad = files.flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(IMPORT)]
        .map((m) => resolve(dirname(f), (m[1] ?? m[2] ?? m[3])!))
        .filter((target) => !relative(join(root, 'web'), target).split('/').every((part) => part !== '..'))
        .map((target) => `${relative(root, f)} -> ${relative(root, target)}`),
    );
    assert.deepEqual(bad, [], 'web/ imports from outside web/');
  });
});
