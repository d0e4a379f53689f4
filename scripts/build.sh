#!/usr/bin/env bash
# The main job: set up .venv and run `dbt build`.
#   MDC_DUCKDB_PATH unset: the project's own sample. The embedded sample is
#     loaded into data/pipeline.duckdb and data/chroma (skipped when they
#     exist), then built.
#   MDC_DUCKDB_PATH set: your pipeline. Nothing is loaded; `dbt build` runs
#     on your file (which must exist: nothing creates it) with the Chroma
#     store from MDC_CHROMA_PATH / MDC_CHROMA_COLLECTION (or --vars).
# Extra arguments go to dbt, e.g.  scripts/build.sh --vars '{resolution: 2.0}'
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export DBT_PROFILES_DIR="$PWD"
export DBT_SEND_ANONYMOUS_USAGE_STATS=False

if [ -z "${MDC_DUCKDB_PATH:-}" ]; then
    .venv/bin/python -m mdc_clustering.sample   # into the project's data/ only
else
    echo "[build] MDC_DUCKDB_PATH=$MDC_DUCKDB_PATH: building your pipeline (the sample is not loaded)"
fi
.venv/bin/dbt build "$@"
