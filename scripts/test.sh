#!/usr/bin/env bash
# Every test: lint (ruff for Python, sqlfluff for SQL), then pytest, which covers the Python package and
# runs `dbt build` (models, dbt data tests, dbt unit tests) on throw-away
# copies of the sample warehouse. Never touches data/pipeline.duckdb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The docs lineage check drives Debian's Chromium (headless).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        echo "[test] installing chromium (Debian package) for the docs lineage check"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "[test] chromium missing: install it (sudo apt-get install chromium) for the docs lineage check" >&2
        exit 1
    fi
fi

export DBT_PROFILES_DIR="$PWD"
export DBT_SEND_ANONYMOUS_USAGE_STATS=False

.venv/bin/ruff check src tests python_models scripts benchmarks
# sqlfluff's dbt templater compiles the project: point it at a scratch database (and store), created
# here because nothing in the build creates a missing DuckDB file
lint_dir="$(mktemp -d)"
.venv/bin/python -c "import duckdb, sys; duckdb.connect(sys.argv[1]).close()" "$lint_dir/lint.duckdb"
MDC_DUCKDB_PATH="$lint_dir/lint.duckdb" MDC_CHROMA_PATH="$lint_dir/chroma" MDC_CHROMA_COLLECTION=lint \
    .venv/bin/sqlfluff lint models tests/dbt --disable-progress-bar --nocolor
# On every core (pytest-xdist); a test module stays on one worker, so its
# module-scoped warehouse is built once. The reliability summary adds up the workers'.
.venv/bin/python -m pytest -n auto --dist loadscope "$@"
