#!/usr/bin/env bash
# Create .venv/ in the repo root and install the project with its pinned
# dependencies (requirements.lock). Re-runs are cheap: nothing is installed
# again unless pyproject.toml or requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi

stamp=.venv/.mdc-clustering-installed
wanted="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "[setup] installing dependencies into .venv (pinned by requirements.lock)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c requirements.lock -e ".[dev]"
    echo "$wanted" > "$stamp"
fi
