#!/usr/bin/env bash
# Runs runpoint's default test suite in ./.venv, creating it and installing the dev extra first.
# Tests marked slow are left out (CI runs them after this: `.venv/bin/python -m pytest -n 2 -m slow`).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k resume -x`, or `-m slow` for the slow ones.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# Install only when pyproject.toml changed since the last install: a rerun starts testing at once.
stamp=.venv/.runpoint-dev-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    echo "$wanted" > "$stamp"
fi
exec .venv/bin/python -m pytest -n 2 -m "not slow" --durations=15 "$@"
