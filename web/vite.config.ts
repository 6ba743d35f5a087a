// The web UI's build: hashed files under dist/web/assets/ (cached for a year by the proxy), an
// index.html with no inline script or style (the proxy's CSP allows only this origin's files).
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/web/',
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Inlined assets would become data: URLs; keep every asset a file the CSP allows.
    assetsInlineLimit: 0,
    // The module preload polyfill is an inline-free chunk, but no browser we support needs it.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
  oxc: { jsx: { runtime: 'automatic' } },
});
