#!/usr/bin/env bash
# Bundles each program into dist/NAME/ (npm packages stay external; code splitting keeps what a command
# loads lazily in its own chunk); bin/ uses a bundle only while it is newer than every source file.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in ward wsh wctl; do
  rm -rf "dist/$p"
  node_modules/.bin/esbuild "src/cli/$p/main.ts" --bundle --splitting --platform=node --format=esm --packages=external \
    --target=node20 --outdir="dist/$p" --out-extension:.js=.mjs --log-level=warning
done
# The web UI: React + xterm.js, built by Vite into dist/web/ (hashed assets), which the proxy serves.
node_modules/.bin/vite build web --logLevel warn
