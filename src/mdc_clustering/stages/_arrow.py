"""Arrow helpers the stages share."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

# A stage's progress callback (:func:`mdc_clustering.progress.dbt_progress`), or None.
Progress = Callable[..., None] | None


def constant_column(value, arrow_type: pa.DataType, n: int) -> pa.Array:
    """One value on ``n`` rows as a dictionary of it: one zero byte a row, not a filled column."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([value], arrow_type))
