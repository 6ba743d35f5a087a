#!/usr/bin/env bash
# The whole test suite: typecheck, then unit tests (beside the code) and end-to-end tests (test/).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Format and lint (biome.jsonc): a layout or lint finding fails the suite with Biome's own message.
echo "== biome"
npx biome ci .
echo "== typecheck"
npx tsc --noEmit -p .
npx tsc --noEmit -p web
echo "== tests"
mapfile -t files < <(find src test web/src -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=2 --test-timeout=300000 "${files[@]}"
echo "== suite took $(( $(date +%s) - start ))s"
