// Starts a Ward program: the prebuilt bundle in dist/ (`npm run build`, done by scripts/setup.sh) when
// it is newer than every source file, else the TypeScript sources through tsx. A stale bundle never
// runs, so editing a source file needs no rebuild; the bundle saves ~0.4 s of start-up per command,
// which matters for `wsh proxy ssh` (it starts on every ssh connection).
import { readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** True when `bundle` exists and no file under `srcDir` (URLs) is newer than it. */
export function isFresh(bundle, srcDir) {
  try {
    return statSync(bundle).mtimeMs >= newestSource(srcDir);
  } catch {
    return false; // no bundle: run the sources
  }
}

export async function launch(name) {
  const bundle = new URL(`dist/${name}/main.mjs`, root);
  if (isFresh(bundle, new URL('src/', root))) {
    await import(bundle.href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL(`src/cli/${name}/main.ts`, root).href);
}
