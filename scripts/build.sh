#!/usr/bin/env bash
# Bundles each program into dist/NAME/ (scripts/bundle.mjs); bin/ uses a bundle only while it is newer than
# every source file.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/bundle.mjs dist
# The web UI: React + xterm.js, built by Vite into dist/web/ (hashed assets), which the proxy serves.
node_modules/.bin/vite build web --logLevel warn
