"""Distinctive terms of each cluster by class-based TF-IDF."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["TOKEN_PATTERN", "class_tfidf", "cluster_terms", "cluster_terms_of_texts"]

# Words of two or more letters: numbers and single letters say little about a topic.
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"


def class_tfidf(
    class_texts: list[str], *, ngram_range: tuple[int, int] = (1, 2), extra_stop_words: list[str] = ()
):
    """Class-based TF-IDF of one concatenated text per class.

    With ``x[c, t]`` the count of term ``t`` in class ``c`` (English stop
    words and ``extra_stop_words`` removed, uni- and bigrams):

    - ``tf[c, t] = x[c, t] / sum_t x[c, t]`` (term frequency within the class),
    - ``idf[t] = log(1 + A / sum_c x[c, t])`` with ``A`` the mean number of
      term occurrences per class,
    - ``score = tf * idf``: frequent in the class, rare across classes.

    Returns
    -------
    scores : scipy.sparse.csr_matrix
        ``(n_classes, n_terms)``.
    terms : numpy.ndarray
        The vocabulary, aligned with the columns.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    stop_words = sorted(ENGLISH_STOP_WORDS | {w.lower() for w in extra_stop_words})
    vectorizer = CountVectorizer(stop_words=stop_words, ngram_range=ngram_range, token_pattern=TOKEN_PATTERN)
    counts = vectorizer.fit_transform(class_texts).astype(np.float64).tocsr()
    per_class = np.asarray(counts.sum(axis=1)).ravel()
    per_term = np.asarray(counts.sum(axis=0)).ravel()
    mean_per_class = per_class.mean()
    idf = np.log(1.0 + mean_per_class / per_term)
    tf = counts.multiply(1.0 / np.maximum(per_class, 1.0)[:, None]).tocsr()
    scores = tf.multiply(idf[None, :]).tocsr()
    return scores, vectorizer.get_feature_names_out()


def cluster_terms(
    memberships: pa.Table, texts: pa.Table, *, top_n: int = 10, extra_stop_words: list[str] = ()
) -> pa.Table:
    """The ``top_n`` most distinctive terms of every cluster.

    Parameters
    ----------
    memberships
        ``dataset_id``, ``cluster`` (null = unclustered, ignored).
    texts
        ``dataset_id``, ``text``.

    Returns
    -------
    pyarrow.Table
        As :func:`cluster_terms_of_texts`, the members' texts joined in
        membership order.
    """
    text_of = dict(zip(texts.column("dataset_id").to_pylist(), texts.column("text").to_pylist(), strict=True))
    members: dict[str, list[str]] = {}
    for dataset_id, cluster in zip(
        memberships.column("dataset_id").to_pylist(), memberships.column("cluster").to_pylist(), strict=True
    ):
        if cluster is not None:
            members.setdefault(cluster, []).append(text_of.get(dataset_id) or "")
    joined = pa.table(
        {"cluster": pa.array(list(members), pa.string()), "text": [" \n".join(m) for m in members.values()]}
    )
    return cluster_terms_of_texts(joined, top_n=top_n, extra_stop_words=extra_stop_words)


def _has_a_term(texts: list[str], extra_stop_words) -> bool:
    """Whether any text holds a term (datasets without text, or only stop words, give no terms at all)."""
    import re

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = ENGLISH_STOP_WORDS | {w.lower() for w in extra_stop_words}
    pattern = re.compile(TOKEN_PATTERN)
    return any(token.lower() not in stop for text in texts for token in pattern.findall(text))


def cluster_terms_of_texts(cluster_texts: pa.Table, *, top_n: int = 10, extra_stop_words: list[str] = ()) -> pa.Table:
    """The ``top_n`` most distinctive terms of every cluster, from one joined text per cluster.

    Parameters
    ----------
    cluster_texts
        ``cluster``, ``text``: each cluster's members' texts joined with
        ``" \\n"`` (the dbt model has DuckDB do the join, so the texts of a
        million datasets never become Python strings one by one).

    Returns
    -------
    pyarrow.Table
        One row per (cluster, term): ``cluster``, ``term_rank`` (1 = most
        distinctive), ``term``, ``score``. No rows when no text holds a term
        (e.g. datasets without text).
    """
    order = pc.sort_indices(cluster_texts, sort_keys=[("cluster", "ascending")])
    cluster_texts = cluster_texts.take(order)
    clusters = cluster_texts.column("cluster").to_pylist()
    out = {"cluster": [], "term_rank": [], "term": [], "score": []}
    texts = [t or "" for t in cluster_texts.column("text").to_pylist()]
    if clusters and _has_a_term(texts, extra_stop_words):
        scores, terms = class_tfidf(texts, extra_stop_words=list(extra_stop_words))
        for row, cluster in enumerate(clusters):
            line = scores.getrow(row)
            ranked = np.lexsort((terms[line.indices], -line.data))[:top_n]
            for rank, j in enumerate(ranked, start=1):
                out["cluster"].append(cluster)
                out["term_rank"].append(rank)
                out["term"].append(str(terms[line.indices[j]]))
                out["score"].append(float(line.data[j]))
    return pa.table(
        {
            "cluster": pa.array(out["cluster"], pa.string()),
            "term_rank": pa.array(out["term_rank"], pa.int32()),
            "term": pa.array(out["term"], pa.string()),
            "score": pa.array(out["score"], pa.float64()),
        }
    )
