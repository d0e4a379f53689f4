"""Progress lines for long steps, written to dbt's own log and console."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from .faults import pause_point

__all__ = ["dbt_progress"]


def _emit(message: str) -> None:
    try:
        from dbt_common.events.base_types import EventLevel
        from dbt_common.events.functions import fire_event
        from dbt_common.events.types import Note
    except ImportError:  # outside dbt (pytest, scripts)
        print(message, file=sys.stderr, flush=True)
        return
    fire_event(Note(msg=message), level=EventLevel.INFO)


def dbt_progress(step: str, *, every_seconds: float = 10.0) -> Callable[..., None]:
    """Return a callback that logs ``"<step>: <message>"`` at most every ``every_seconds``.

    Call it with ``final=True`` for a summary line, which is always written.
    Each call is also the pause point ``step`` of the crash-safety tests
    (:func:`mdc_clustering.faults.pause_point`; a no-op unless a test asks).
    """
    last = [float("-inf")]

    def report(message: str, *, final: bool = False) -> None:
        pause_point(step)
        now = time.monotonic()
        if final or now - last[0] >= every_seconds:
            last[0] = now
            _emit(f"{step}: {message}")

    return report


def state_table_exists(session, name: str) -> bool:
    """Whether ``clustering_state.<name>`` exists yet (a state table is absent before its first run).

    A dbt Python model asks before calling ``dbt.source`` on it (which fails on a missing table).
    """
    [(found,)] = session.execute(
        "select count(*) from information_schema.tables where table_schema = 'clustering_state' and table_name = ?",
        [name],
    ).fetchall()
    return bool(found)


def last_table_has(session, this, column: str) -> bool:
    """Whether the model's own table from the last run (``dbt.this``) exists and has ``column``."""
    [(found,)] = session.execute(
        "select count(*) from information_schema.columns where table_catalog = ? and table_schema = ? "
        "and table_name = ? and column_name = ?",
        [this.database, this.schema, this.identifier, column],
    ).fetchall()
    return bool(found)
