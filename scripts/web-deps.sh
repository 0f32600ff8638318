#!/usr/bin/env bash
# Installs the pages' browser libraries from npm, exactly as pinned in web/package-lock.json.
# Skipped when web/node_modules already matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/../web"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
