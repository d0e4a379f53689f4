"""Pause points for the crash-safety tests: park a dbt run at a named point so a test can kill it there.

A run pauses only when the environment asks for it: ``MDC_TEST_PAUSE_AT``
names the point and ``MDC_TEST_PAUSE_FIFO`` the path of a named pipe. At the
point the run opens the pipe for reading, which blocks until a writer opens
it; the test sees the waiting reader (opening the pipe for writing without
blocking succeeds only then) and SIGKILLs the run. Without those variables a
pause point does nothing.

Python steps pause through :func:`mdc_clustering.progress.dbt_progress`
(the step's name is the point); SQL writes pause through the macro
``test_pause_point`` (``macros/test_pause_point.sql``), which reads the pipe
with DuckDB's ``read_blob``.
"""

from __future__ import annotations

import os

__all__ = ["PAUSE_AT_ENV", "PAUSE_FIFO_ENV", "pause_point"]

PAUSE_AT_ENV = "MDC_TEST_PAUSE_AT"
PAUSE_FIFO_ENV = "MDC_TEST_PAUSE_FIFO"
_RELEASE = b"continue"


def pause_point(name: str) -> None:
    """Block at the point ``name`` when ``MDC_TEST_PAUSE_AT`` names it; else return at once.

    The block lasts until the process is killed, or until a writer sends
    ``continue`` through the pipe (a writer that closes without it leaves
    the run parked: the pipe is opened again).
    """
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    fifo = os.environ.get(PAUSE_FIFO_ENV)
    if not fifo:
        raise RuntimeError(f"{PAUSE_AT_ENV}={name} is set but {PAUSE_FIFO_ENV} (the named pipe) is not")
    while True:
        with open(fifo, "rb") as pipe:  # blocks until a writer opens the pipe
            if pipe.read().strip() == _RELEASE:
                return
