"""A dbt-duckdb plugin that keeps slips from touching the user's files.

Registered first in ``profiles.yml`` under ``plugins:``. It does two things:

* **No DuckDB file is created by accident.** DuckDB creates a missing file
  when it connects, so a typo in ``MDC_DUCKDB_PATH`` used to give a new,
  empty pipeline file (and the build then wrote into it). Before each
  connect this plugin checks that the file exists and otherwise stops with
  one line naming the path and the fix. Nothing is created.
* **The phase's own errors read as one message.** dbt-duckdb reports an
  exception raised in a Python model as ``Python model failed:`` followed by
  the whole traceback, so the clear message (a missing collection, ids that
  do not match ``datasets``) came last, after a screen of frames. For the
  errors this package raises on purpose (:class:`~mdc_clustering.errors.ClusteringInputError`,
  :class:`~mdc_clustering.errors.ParameterError`), the model's error is the
  message alone; any other exception keeps its traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from .errors import ClusteringInputError, ParameterError

__all__ = ["MissingDatabaseError", "Plugin", "check_database_exists"]

SAMPLE_PATH = "data/pipeline.duckdb"  # the profile's default: the project's own sample


class MissingDatabaseError(RuntimeError):
    """The pipeline's DuckDB file does not exist (and is not created)."""


def check_database_exists(path: str) -> None:
    """Raise :class:`MissingDatabaseError` when the DuckDB file ``path`` does not exist.

    In-memory and remote (``md:``, ``motherduck:``) paths pass unchecked.
    """
    if not path or path == ":memory:" or str(path).startswith(("md:", "motherduck:")):
        return
    if Path(path).expanduser().is_file():
        return
    resolved = Path(path).expanduser().resolve()
    if str(path) == SAMPLE_PATH:
        fix = (
            "This is the project's own sample database (MDC_DUCKDB_PATH is unset): create it with "
            "`bash scripts/build.sh` or `.venv/bin/python -m mdc_clustering.sample` from the repository root, "
            "or set MDC_DUCKDB_PATH to your pipeline's DuckDB file."
        )
    else:
        fix = "Check MDC_DUCKDB_PATH (or the profile's path): it must name your pipeline's existing DuckDB file."
    raise MissingDatabaseError(
        f"The pipeline's DuckDB file {path} (resolved to {resolved}) does not exist; nothing was created "
        f"or written. {fix}"
    )


_PLAIN_ERRORS = (ClusteringInputError, ParameterError)


def _plain_python_model_errors() -> None:
    """Make dbt-duckdb report this package's own errors in a Python model as the message alone."""
    from dbt.adapters.duckdb.environments import Environment
    from dbt_common.exceptions import DbtRuntimeError

    original = Environment.run_python_job
    if getattr(original, "_mdc_plain_errors", False):
        return

    @functools.wraps(original.__func__)
    def run_python_job(cls, *args, **kwargs):
        try:
            return original.__func__(cls, *args, **kwargs)
        except DbtRuntimeError as error:
            cause = error.__context__  # dbt-duckdb raises its error while handling the model's
            if isinstance(cause, _PLAIN_ERRORS):
                raise DbtRuntimeError(f"{type(cause).__name__}: {cause}") from None
            raise

    run_python_job._mdc_plain_errors = True
    Environment.run_python_job = classmethod(run_python_job)


class Plugin(BasePlugin):
    """dbt-duckdb plugin: refuse a missing DuckDB file; plain messages for the phase's own errors."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        _plain_python_model_errors()

    def update_connection_config(self, creds, config: dict[str, Any]) -> None:
        # Called by dbt-duckdb just before each duckdb.connect of the database file.
        check_database_exists(creds.path)

    def configure_connection(self, conn) -> None:
        # The settings check of on-run-start (macros/validate_settings.sql): one validator, in Python.
        from .settings import settings_problem

        try:
            conn.create_function("mdc_settings_problem", settings_problem, ["VARCHAR"], "VARCHAR")
        except Exception as error:  # already registered on this connection (a cursor of it)
            if "already exists" not in str(error):
                raise
