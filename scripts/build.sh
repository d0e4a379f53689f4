#!/usr/bin/env bash
# The main job: set up .venv, load the embedded sample (skipped when the
# Chroma store and the pipeline tables already exist) and run `dbt build`.
# Extra arguments go to dbt, e.g.  scripts/build.sh --vars '{resolution: 2.0}'
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export DBT_PROFILES_DIR="$PWD"
export DBT_SEND_ANONYMOUS_USAGE_STATS=False
export MDC_DUCKDB_PATH="${MDC_DUCKDB_PATH:-data/pipeline.duckdb}"

.venv/bin/python -m mdc_clustering.sample --db "$MDC_DUCKDB_PATH" --chroma data/chroma
.venv/bin/dbt build "$@"
