// Bundles Ward's programs with esbuild into OUTDIR/NAME/main.mjs, one way for `npm run build` and the benches:
//   node scripts/bundle.mjs OUTDIR [ward] [wsh] [wctl]        (default: all three)
// Code splitting keeps what a command loads lazily in its own chunk. ward and wctl leave npm packages
// external. wsh carries its packages inside the bundle (all but ssh2, whose native parts load at run time):
// it starts on every `ssh` through Ward as the ProxyCommand and for every `wsh ls`, and resolving and
// compiling a few hundred files of zod, Connect and protobuf from node_modules was ~70 ms of `wsh ls`.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const PROGRAMS = ['ward', 'wsh', 'wctl'];

/**
 * zod re-exports its 60-odd message locales as `z.locales`, which keeps them all in the bundle: ~300 KB that every
 * `wsh` start compiled. Ward only uses English (zod loads it itself), so the bundle's `z.locales` holds English alone.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";',
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

function options(name) {
  if (name !== 'wsh') return { packages: 'external' };
  return {
    external: ['ssh2', 'cpu-features'],
    plugins: [zodEnglishOnly],
    // Bundled CommonJS packages call require() for Node's built-ins; ESM output has none of its own.
    banner: {
      js: "import { createRequire as __wardRequire } from 'node:module'; const require = __wardRequire(import.meta.url);",
    },
  };
}

export async function bundle(outDir, names = PROGRAMS) {
  await Promise.all(
    names.map(async (name) => {
      if (!PROGRAMS.includes(name)) throw new Error(`unknown program "${name}" (expected ${PROGRAMS.join(', ')})`);
      const outdir = join(outDir, name);
      await rm(outdir, { recursive: true, force: true });
      await build({
        entryPoints: [join(ROOT, 'src', 'cli', name, 'main.ts')],
        bundle: true,
        splitting: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        outdir,
        outExtension: { '.js': '.mjs' },
        logLevel: 'warning',
        ...options(name),
      });
    }),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [outDir, ...names] = process.argv.slice(2);
  if (!outDir) {
    console.error('usage: node scripts/bundle.mjs OUTDIR [ward] [wsh] [wctl]');
    process.exit(2);
  }
  try {
    await bundle(resolve(outDir), names.length ? names : PROGRAMS);
  } catch (err) {
    console.error(`bundle: ${err.message.split('\n')[0]}`);
    process.exit(1);
  }
}
