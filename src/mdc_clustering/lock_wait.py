"""A dbt-duckdb plugin that bounds the wait for a DuckDB file another process holds.

Why: dbt-duckdb's own ``retries: {connect_attempts: n}`` retries each
*connection open* (sleeping 1, 2, 4, ... s, also after the last attempt), and
a failed open leaves no connection behind, so every later open of the same
dbt run (schema listing, the rollback after the error, each thread, each
node) waits the whole series again, so the wait grows with the number of
opens a run makes.

This plugin makes the wait one deadline per dbt process: the first open
polls the file until it can be opened or ``MDC_LOCK_WAIT_SECONDS`` (default
30) have passed; once it has given up, every later open of the run fails at
once with the same one-line message naming the file and the process holding
it. Registered in ``profiles.yml`` under ``plugins:``.

When the file opens, the plugin keeps its connection until dbt-duckdb has
opened its own (same path, same configuration: DuckDB hands back the same
database instance), so no other process can take the lock in between.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin

__all__ = ["DEFAULT_WAIT_SECONDS", "ENV_VAR", "LockWaitError", "Plugin", "open_when_free"]

ENV_VAR = "MDC_LOCK_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 30.0
_LOCK_MESSAGE = "Could not set lock on file"


class LockWaitError(RuntimeError):
    """The DuckDB file stayed locked by another process for the whole allowed wait."""


def wait_seconds_from_env() -> float:
    """The allowed wait in seconds: ``MDC_LOCK_WAIT_SECONDS``, or 30 when unset."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_WAIT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise LockWaitError(f"{ENV_VAR} must be a number of seconds >= 0; got {raw!r}")
    return value


def open_when_free(
    path: str, config: dict[str, Any], *, wait_seconds: float, poll_seconds: float = 0.25
) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-write, retrying while another process holds its lock, for at most ``wait_seconds``.

    Returns
    -------
    duckdb.DuckDBPyConnection
        An open connection. Any error other than the lock is raised at once.

    Raises
    ------
    LockWaitError
        One line: DuckDB's message (the file and the holder's PID), the time
        waited and how to change it.
    """
    deadline = time.monotonic() + wait_seconds
    started = time.monotonic()
    pause = poll_seconds
    while True:
        try:
            return duckdb.connect(path, read_only=False, config=config)
        except duckdb.IOException as error:
            if _LOCK_MESSAGE not in str(error):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                detail = " ".join(str(error).split())  # DuckDB's text names the file and the holder's PID
                raise LockWaitError(
                    f"{detail} -- gave up after waiting {time.monotonic() - started:.1f}s "
                    f"({ENV_VAR}={wait_seconds:g}); stop that process or raise {ENV_VAR}."
                ) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)


class Plugin(BasePlugin):
    """dbt-duckdb plugin: one bounded wait for the database lock per dbt process."""

    _state_lock = threading.Lock()
    _gave_up: str | None = None  # the message of the first failure; later opens repeat it at once
    _held: list[duckdb.DuckDBPyConnection] = []

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.wait_seconds = wait_seconds_from_env()

    def update_connection_config(self, creds, config: dict[str, Any]) -> None:
        # Called by dbt-duckdb just before each duckdb.connect of the database file.
        path = creds.path
        if not path or path == ":memory:" or str(path).startswith(("md:", "motherduck:")):
            return
        cls = type(self)
        with cls._state_lock:
            if cls._gave_up is not None:
                raise LockWaitError(cls._gave_up)
            try:
                cls._held.append(open_when_free(path, config, wait_seconds=self.wait_seconds))
            except LockWaitError as error:
                cls._gave_up = str(error)
                raise

    def configure_connection(self, conn) -> None:
        # dbt-duckdb's own connection is open now: ours can go.
        cls = type(self)
        with cls._state_lock:
            while cls._held:
                cls._held.pop().close()
