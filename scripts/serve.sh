#!/usr/bin/env bash
# Sets up .venv (if needed) and starts the server with embedded defaults.
# Extra args go to 'stagepass serve' (see README: Configuration).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
bash scripts/web-deps.sh
exec .venv/bin/stagepass serve "$@"
