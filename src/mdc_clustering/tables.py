"""The stage entry points at their old address: the code lives in :mod:`mdc_clustering.stages`."""

from .stages import *  # noqa: F403  (the same objects, re-exported)
from .stages import __all__  # noqa: F401
