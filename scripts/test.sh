#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
bash scripts/web-deps.sh
# the layer contracts in pyproject.toml (import-linter): an import that points up fails the run
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -q "$@"
