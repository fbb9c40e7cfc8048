#!/usr/bin/env bash
# Runs runpoint's test suite in ./.venv, creating it and installing the dev extra first.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k resume -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
exec .venv/bin/python -m pytest -n 2 "$@"
