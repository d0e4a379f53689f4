"""Shared fixtures: tiny Chroma stores, and a throw-away copy of the sample warehouse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "data" / "sample"


def make_store(path: Path, name: str, ids, vectors, metadatas=None) -> Path:
    """Write a Chroma persistent store at ``path`` with one collection."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(name, embedding_function=None)
    if len(ids):
        collection.add(
            ids=list(ids),
            embeddings=np.asarray(vectors, dtype=np.float32),
            metadatas=metadatas,
        )
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The embedded sample, loaded into a throw-away warehouse and built once with default vars.

    Tests that change it must restore it (or use their own warehouse).
    """
    from dbt_runner import Warehouse

    wh = Warehouse(tmp_path_factory.mktemp("sample"))
    wh.dbt("build")
    return wh
