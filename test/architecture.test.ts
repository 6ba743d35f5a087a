// Clients never import servers (STYLE.md 12): wsh and wctl reach only src/api, src/crypto and src/cli,
// so they stay small and cannot touch a backend or a CA key by accident.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
