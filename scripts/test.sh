#!/usr/bin/env bash
# Every test: lint (ruff for Python, sqlfluff for SQL), then pytest, which covers the Python package and
# runs `dbt build` (models, dbt data tests, dbt unit tests) on throw-away
# copies of the sample warehouse. Never touches data/pipeline.duckdb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export DBT_PROFILES_DIR="$PWD"
export DBT_SEND_ANONYMOUS_USAGE_STATS=False

.venv/bin/ruff check src tests python_models scripts
# sqlfluff's dbt templater compiles the project: point it at a scratch database
MDC_DUCKDB_PATH="$(mktemp -d)/lint.duckdb" .venv/bin/sqlfluff lint models tests/dbt --disable-progress-bar --nocolor
.venv/bin/python -m pytest "$@"
