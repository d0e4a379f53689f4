"""How well the cluster terms tell clusters apart, on the labelled text sets (benchmarks/data).

For each set, its true classes stand for clusters; the terms are the project's
(mdc_clustering.terms.cluster_terms_of_texts). Printed per set: the share of classes whose
top 3 terms appear in no other class's top 3, and the most classes one word leads.

Usage::

    .venv/bin/python benchmarks/term_distinctness.py
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mdc_clustering.terms import cluster_terms_of_texts

DATA = Path(__file__).resolve().parent / "data"


def main() -> None:
    print("| set | classes | top 3 in no other class's top 3 | most classes led by one word |")
    print("|---|---:|---:|---:|")
    for path in sorted(DATA.glob("*.parquet")):
        table = pq.read_table(path, columns=["label", "text"])
        groups: dict[str, list[str]] = {}
        for label, text in zip(table["label"].to_pylist(), table["text"].to_pylist(), strict=True):
            groups.setdefault(str(label), []).append(text or "")
        joined = pa.table({"cluster": list(groups), "text": [" \n".join(v) for v in groups.values()]})
        terms = cluster_terms_of_texts(joined, top_n=3).to_pylist()
        top: dict[str, list[str]] = {}
        for row in terms:
            top.setdefault(row["cluster"], []).append(row["term"])
        alone = sum(not (set(t) & set().union(*(set(o) for c, o in top.items() if c != k))) for k, t in top.items())
        leaders = Counter(t[0] for t in top.values())
        print(f"| {path.stem} | {len(groups)} | {alone / len(groups):.2f} | {max(leaders.values())} |")


if __name__ == "__main__":
    main()
