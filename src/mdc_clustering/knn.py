"""The k-NN names at their old address: the code lives in :mod:`mdc_clustering.neighbors`."""

from .neighbors import *  # noqa: F403  (the same objects, re-exported)
from .neighbors import __all__  # noqa: F401
