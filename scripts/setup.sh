#!/usr/bin/env bash
# Installs Ward from this checkout: npm dependencies, and `ward`, `wsh`, `wctl` on PATH.
# With --test it also installs what the test suite drives for real: OpenSSH, PostgreSQL, openssl, Chromium,
# asciinema.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--test" ]]; then
  need=()
  command -v ssh-keygen >/dev/null || need+=(openssh-client)
  [[ -x /usr/lib/openssh/sftp-server ]] || need+=(openssh-server)
  command -v openssl >/dev/null || need+=(openssl)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  # The web UI's end-to-end tests drive Debian's Chromium with playwright-core (never a downloaded browser).
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  # Session recordings must be readable by asciinema itself; script(1) gives it the terminal it wants.
  command -v asciinema >/dev/null || need+=(asciinema)
  command -v script >/dev/null || need+=(bsdutils)
  if ((${#need[@]})); then
    echo "Installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

# Native addons (better-sqlite3, node-pty) build against this Node's own headers, so nothing is downloaded. These
# machines set that in root's ~/.npmrc (nodedir); say it here too, for a run under another HOME or user.
node_prefix=$(dirname "$(dirname "$(command -v node)")")
if [[ -z "${npm_config_nodedir:-}" && -f "$node_prefix/include/node/node.h" ]]; then
  export npm_config_nodedir="$node_prefix"
fi

echo "Installing npm dependencies"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
# Puts bin/ward, bin/wsh and bin/wctl on PATH (symlinks into this checkout).
npm link --no-audit --no-fund --loglevel=error >/dev/null
echo "Installed: $(command -v ward) $(command -v wsh) $(command -v wctl)"
