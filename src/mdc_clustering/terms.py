"""Distinctive terms of each cluster by class-based TF-IDF."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DOMAIN_STOP_WORDS", "TOKEN_PATTERN", "class_tfidf", "cluster_terms", "cluster_terms_of_texts"]

# Words of two or more letters: numbers and single letters say little about a topic.
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"
# Left out of every cluster's terms, on top of scikit-learn's English stop words and the setting
# cluster_term_stop_words: words every dataset description uses.
DOMAIN_STOP_WORDS = ("data", "dataset", "datasets", "https", "http", "www", "doi", "org", "com")


def class_tfidf(
    class_texts: list[str], *, ngram_range: tuple[int, int] = (1, 2), extra_stop_words: list[str] = ()
):
    """Class-based TF-IDF of one concatenated text per class.

    With ``x[c, t]`` the count of term ``t`` in class ``c`` (English stop
    words, :data:`DOMAIN_STOP_WORDS` and ``extra_stop_words`` removed, uni-
    and bigrams):

    - ``tf[c, t] = sqrt(x[c, t]) / sum_t x[c, t]`` (term frequency within
      the class, frequent words reduced as BERTopic's
      ``reduce_frequent_words`` does: a word every text uses, "said" in
      news, no longer outweighs the words that tell the classes apart),
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
    from sklearn.feature_extraction.text import CountVectorizer

    stop_words = sorted(_stop_words(extra_stop_words))
    vectorizer = CountVectorizer(stop_words=stop_words, ngram_range=ngram_range, token_pattern=TOKEN_PATTERN)
    counts = vectorizer.fit_transform(class_texts).astype(np.float64).tocsr()
    per_class = np.asarray(counts.sum(axis=1)).ravel()
    per_term = np.asarray(counts.sum(axis=0)).ravel()
    mean_per_class = per_class.mean()
    idf = np.log(1.0 + mean_per_class / per_term)
    tf = counts.sqrt().multiply(1.0 / np.maximum(per_class, 1.0)[:, None]).tocsr()
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


def _stop_words(extra_stop_words) -> frozenset[str]:
    """scikit-learn's English stop words, :data:`DOMAIN_STOP_WORDS` and ``extra_stop_words``, lower-cased (the
    tokens are)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS | {w.lower() for w in (*DOMAIN_STOP_WORDS, *extra_stop_words)}


def _top_terms(texts: list[str], top_n: int, extra_stop_words) -> list[list[tuple[str, float]]]:
    """Each text's ``top_n`` terms by :func:`class_tfidf`'s score (ties by term), without building its matrix.

    The same counts and the same float operations as :func:`class_tfidf` (uni- and bigrams of the
    tokens left after the stop words, ``sqrt(count) * (1 / class total) * idf``), so the same scores to the
    bit; but counted with ``collections.Counter`` one class at a time and ranked by a partial sort,
    where scikit-learn's vectorizer also sorts the whole vocabulary (twice).
    """
    import re
    from collections import Counter

    stop = _stop_words(extra_stop_words)
    find = re.compile(TOKEN_PATTERN).findall
    vocabulary: dict[str, int] = {}
    per_class_ids, per_class_counts = [], []
    for text in texts:
        tokens = [token for token in find(text.lower()) if token not in stop]
        counted = Counter(tokens)
        counted.update(map(" ".join, zip(tokens, tokens[1:], strict=False)))
        ids = np.fromiter((vocabulary.setdefault(term, len(vocabulary)) for term in counted), np.int64,
                          count=len(counted))
        per_class_ids.append(ids)
        per_class_counts.append(np.fromiter(counted.values(), np.float64, count=len(counted)))
    per_class = np.array([c.sum() for c in per_class_counts], dtype=np.float64)
    per_term = np.zeros(len(vocabulary), dtype=np.float64)
    for ids, counts in zip(per_class_ids, per_class_counts, strict=True):
        per_term[ids] += counts  # a class names each term once
    idf = np.log(1.0 + per_class.mean() / per_term) if len(vocabulary) else per_term
    names = list(vocabulary)
    out = []
    for ids, counts, total in zip(per_class_ids, per_class_counts, per_class, strict=True):
        scores = (np.sqrt(counts) * (1.0 / max(total, 1.0))) * idf[ids]
        if scores.size > top_n:  # every term scoring at least the top_n-th best (ties at the cut included)
            cut = np.partition(scores, scores.size - top_n)[scores.size - top_n]
            keep = np.flatnonzero(scores >= cut)
        else:
            keep = np.arange(scores.size)
        ranked = sorted((-scores[i], names[ids[i]]) for i in keep.tolist())[:top_n]
        out.append([(term, -negative) for negative, term in ranked])
    return out


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
    for cluster, ranked in zip(clusters, _top_terms(texts, top_n, extra_stop_words), strict=True):
        for rank, (term, score) in enumerate(ranked, start=1):
            out["cluster"].append(cluster)
            out["term_rank"].append(rank)
            out["term"].append(term)
            out["score"].append(float(score))
    return pa.table(
        {
            "cluster": pa.array(out["cluster"], pa.string()),
            "term_rank": pa.array(out["term_rank"], pa.int32()),
            "term": pa.array(out["term"], pa.string()),
            "score": pa.array(out["score"], pa.float64()),
        }
    )
