"""The scanpy side of benchmarks/scale.py, run in a fresh process.

Loads the embeddings ``.npy`` written by scale.py, then times, separately:
importing scanpy, reading the matrix into an AnnData,
``sc.pp.neighbors(n_neighbors=30, metric="cosine", use_rep="X")`` and
``sc.tl.leiden(flavor="igraph", n_iterations=2, random_state=0)``. Writes the
Leiden labels (``.npy``), the neighbours of a few sampled rows (for recall)
and a JSON of the timings. scale.py measures this process's wall time and
peak memory from outside.

Usage (scale.py does this for you)::

    python benchmarks/scanpy_side.py EMBEDDINGS.npy OUT_DIR [--sample-rows ROWS.npy] [--jobs 2]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def _scipy_compat() -> None:
    """scanpy 1.11.5 calls ``getnnz`` on the sparse *array* pynndescent returns; scipy 1.17 dropped it there.

    Put back the public name for the private method that still does the same,
    so that scanpy's own code path runs unchanged.
    """
    import scipy.sparse as sp

    for cls in (sp.csr_array, sp.csc_array, sp.coo_array):
        if not hasattr(cls, "getnnz") and hasattr(cls, "_getnnz"):
            cls.getnnz = lambda self, axis=None: self._getnnz(axis=axis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sample-rows", type=Path, help=".npy of row indices whose neighbours are saved")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="sc.settings.n_jobs (default: cores)")
    parser.add_argument("--n-neighbors", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    t = time.perf_counter()
    import anndata as ad
    import scanpy as sc

    times["import_s"] = time.perf_counter() - t
    sc.settings.n_jobs = args.jobs
    _scipy_compat()

    t = time.perf_counter()
    x = np.array(np.load(args.embeddings, mmap_mode="r"), dtype=np.float32)
    adata = ad.AnnData(X=x)
    times["load_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sc.pp.neighbors(adata, n_neighbors=args.n_neighbors, metric="cosine", use_rep="X")
    times["neighbors_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=0, directed=False)
    times["leiden_s"] = time.perf_counter() - t

    labels = adata.obs["leiden"].astype(int).to_numpy().astype(np.int32)
    np.save(args.out / "scanpy_labels.npy", labels)
    if args.sample_rows is not None:
        rows = np.load(args.sample_rows)
        dist = adata.obsp["distances"].tocsr()
        neighbours = np.full((len(rows), args.n_neighbors), -1, dtype=np.int64)
        for j, i in enumerate(rows):
            lo, hi = dist.indptr[i], dist.indptr[i + 1]
            cols = dist.indices[lo:hi][np.argsort(dist.data[lo:hi], kind="stable")]
            cols = cols[cols != i][: args.n_neighbors]
            neighbours[j, : len(cols)] = cols
        np.save(args.out / "scanpy_sample_neighbors.npy", neighbours)
    times["in_process_wall_s"] = time.perf_counter() - STARTED
    result = {
        **times,
        "n_clusters": int(labels.max()) + 1 if len(labels) else 0,
        "n_jobs": args.jobs,
        "scanpy": metadata.version("scanpy"),
    }
    (args.out / "scanpy_result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
