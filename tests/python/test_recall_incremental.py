"""A re-run's recall sample: the stored exact answers updated for new, changed and removed datasets equal a
full recomputation (brute force numpy on random data), and nothing changed searches nothing."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from mdc_clustering.embeddings import iter_embeddings, rows_reader
from mdc_clustering.neighbors import knn_recall, update_exact_answers
from mdc_clustering.stages.pull import embedding_hashes
from mdc_clustering.stages.recall import recall_summary, scored_recall_sample

D, K, S = 8, 5, 40


class Data:
    """Ids and vectors of a run, as the models see them (a DuckDB relation of the embeddings)."""

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = dict(sorted(vectors.items()))
        self.ids = list(self.vectors)
        self.x = np.asarray([self.vectors[i] for i in self.ids], np.float32)
        self.con = duckdb.connect()
        table = pa.table({
            "dataset_id": pa.array(self.ids, pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(self.x.reshape(-1), pa.float32()), D),
            "embedding_hash": pa.array(embedding_hashes(self.x), pa.int64()),
        })
        self.con.register("src", table)
        self.relation = self.con.table("src")
        self.current = table.select(["dataset_id", "embedding_hash"])
        self.streamed = 0

    def sample(self, size=S):
        """The datasets whose id hashes lowest (the model uses DuckDB's hash; any stable order will do)."""
        return sorted(self.ids, key=lambda i: (hashlib.md5(i.encode()).hexdigest(), i))[:size]

    def space(self):
        self.streamed += 1
        return iter_embeddings(self.relation, normalize=True, batch_rows=17)

    def exact_kth(self, sample, k=K):
        unit = self.x / np.linalg.norm(self.x, axis=1, keepdims=True)
        at = {d: i for i, d in enumerate(self.ids)}
        rows = np.array([at[d] for d in sample])
        sims = unit[rows] @ unit.T
        sims[np.arange(len(rows)), rows] = -np.inf
        sims = -np.sort(-sims, axis=1)
        return sims[:, min(k, len(self.ids) - 1) - 1]

    def neighbors(self, sample, k=K, noise=0.0, rng=None):
        """A k-NN list per sampled dataset: the exact one, with a share ``noise`` of its members swapped."""
        unit = self.x / np.linalg.norm(self.x, axis=1, keepdims=True)
        at = {d: i for i, d in enumerate(self.ids)}
        rows = []
        for d in sample:
            sims = unit[at[d]] @ unit.T
            sims[at[d]] = -np.inf
            order = list(np.argsort(-sims, kind="stable")[:min(k, len(self.ids) - 1)])
            for r in range(len(order)):
                if rng is not None and rng.random() < noise:
                    order[r] = int(np.argsort(-sims, kind="stable")[k + 5 + r])
            rows += [(d, self.ids[j], r + 1) for r, j in enumerate(order)]
        return pa.table({
            "dataset_id": [a for a, _, _ in rows], "neighbor_id": [b for _, b, _ in rows],
            "neighbor_rank": [r for *_, r in rows], "search_dims": [D] * len(rows),
            "ivf_nlist": pa.nulls(len(rows), pa.int32()), "ivf_nprobe": pa.nulls(len(rows), pa.int32()),
        })


def score(data: Data, state=None, *, incremental=True, noise=0.3, seed=0, max_change_share=0.5):
    sample = data.sample()
    stored, previous = state if state is not None else (None, None)
    return scored_recall_sample(
        data.current, pa.array(sample), data.neighbors(sample, noise=noise, rng=np.random.default_rng(seed)),
        rows_of=rows_reader(data.relation, data.con), search_space=data.space, method="exact", k=K,
        stored=stored, previous=previous, incremental=incremental, max_change_share=max_change_share,
    )


def state_of(scored: pa.Table, data: Data):
    """What the model recall_state keeps: the sample's answers, and every dataset's embedding fingerprint."""
    return scored.select(["dataset_id", "exact_neighbor_ids", "exact_similarities", "recall_fingerprint"]), data.current


def assert_equals_a_full_computation(scored: pa.Table, data: Data, *, seed=0, noise=0.3):
    full = score(data, incremental=False, seed=seed, noise=noise)
    assert scored.column("dataset_id").to_pylist() == full.column("dataset_id").to_pylist()
    got = scored.column("exact_kth_similarity").to_numpy()
    np.testing.assert_allclose(got, full.column("exact_kth_similarity").to_numpy(), atol=1e-6)
    np.testing.assert_allclose(got, data.exact_kth(data.sample()), atol=1e-6)  # brute force
    assert scored.column("found").to_pylist() == full.column("found").to_pylist()
    assert recall_summary(scored)["recall_at_k"][0].as_py() == recall_summary(full)["recall_at_k"][0].as_py()
    for ids, sims in zip(scored.column("exact_neighbor_ids").to_pylist(),
                         scored.column("exact_similarities").to_pylist(), strict=True):
        assert len(ids) == len(set(ids)) == min(K, len(data.ids) - 1)
        assert sims == sorted(sims, reverse=True)


def random_vectors(rng, names):
    return {name: rng.normal(size=D).astype(np.float32) for name in names}


@pytest.fixture
def first(rng):
    data = Data(random_vectors(rng, [f"d{i:03d}" for i in range(300)]))
    scored = score(data)
    assert set(scored.column("recall_path").to_pylist()) == {"full"}
    assert scored.column("recall_reason")[0].as_py() == "full search: no exact answers stored by an earlier run"
    assert scored.column("samples_searched")[0].as_py() == S and data.streamed == 1
    return data, scored


def test_the_full_measure_equals_knn_recall_on_brute_force(first):
    data, scored = first
    assert_equals_a_full_computation(scored, data)
    sample = data.sample()
    at = {d: i for i, d in enumerate(data.ids)}
    lists = data.neighbors(sample, noise=0.3, rng=np.random.default_rng(0))
    returned = np.array([at[n] for n in lists.column("neighbor_id").to_pylist()]).reshape(S, K)
    expected = knn_recall(data.x, np.array([at[d] for d in sample]), returned)
    summary = recall_summary(scored)
    assert summary["recall_at_k"][0].as_py() == pytest.approx(expected, abs=1e-12)
    assert 0.3 < expected < 0.95
    assert summary["recall_sample_size"][0].as_py() == S and summary["n_datasets"][0].as_py() == 300


def test_nothing_changed_searches_nothing_and_reads_no_full_pass(first):
    data, scored = first
    again = score(data, state_of(scored, data))
    assert (again["recall_path"][0].as_py(), again["samples_searched"][0].as_py()) == ("incremental", 0)
    assert data.streamed == 1  # the first run's pass only
    assert not any(again.column("exact_searched").to_pylist())
    assert again.column("exact_neighbor_ids").to_pylist() == scored.column("exact_neighbor_ids").to_pylist()
    assert_equals_a_full_computation(again, data)


def test_adds_removes_and_changes_equal_a_full_computation(first, rng):
    data, scored = first
    sample = data.sample()
    vectors = dict(data.vectors)
    # a dataset in a sampled dataset's exact top k, that is not sampled itself, removed
    holder = sample[3]
    member = next(i for i in scored.column("exact_neighbor_ids")[3].as_py() if i not in sample)
    del vectors[member]
    # an unsampled dataset changed; new datasets, one of them a near copy of a sampled dataset
    outside = [i for i in data.ids if i not in sample and i != member]
    vectors[outside[0]] = rng.normal(size=D).astype(np.float32)
    vectors.update(random_vectors(rng, [f"n{i:03d}" for i in range(6)]))
    vectors["n_close"] = data.vectors[sample[10]] + 1e-3
    # a sampled dataset changed
    vectors[sample[20]] = rng.normal(size=D).astype(np.float32)
    now = Data(vectors)
    updated = score(now, state_of(scored, data))
    assert updated["recall_path"][0].as_py() == "incremental"
    searched = dict(zip(updated.column("dataset_id").to_pylist(), updated.column("exact_searched").to_pylist(),
                        strict=True))
    assert searched[holder] and searched[sample[20]]
    assert 0 < updated["samples_searched"][0].as_py() < S and now.streamed == 1
    # the near copy entered its list by the merge, not by a search
    index = updated.column("dataset_id").to_pylist().index(sample[10])
    assert updated.column("exact_neighbor_ids")[index].as_py()[0] == "n_close"
    assert_equals_a_full_computation(updated, now)


def test_a_dataset_moved_into_the_sample_is_searched(first, rng):
    data, scored = first
    sample = data.sample()
    vectors = dict(data.vectors)
    del vectors[sample[0]]  # the next dataset by id hash enters the sample
    entering = data.sample(S + 1)[-1]
    now = Data(vectors)
    assert entering in now.sample()
    updated = score(now, state_of(scored, data))
    searched = dict(zip(updated.column("dataset_id").to_pylist(), updated.column("exact_searched").to_pylist(),
                        strict=True))
    assert updated["recall_path"][0].as_py() == "incremental" and searched[entering]
    assert_equals_a_full_computation(updated, now)


def test_chained_updates_stay_exact(first, rng):
    data, scored = first
    for step in range(4):
        vectors = dict(data.vectors)
        for name in rng.choice(data.ids, 3, replace=False):
            del vectors[str(name)]
        for name in rng.choice(list(vectors), 3, replace=False):
            vectors[str(name)] = rng.normal(size=D).astype(np.float32)
        vectors.update(random_vectors(rng, [f"s{step}_{i}" for i in range(4)]))
        now = Data(vectors)
        scored = score(now, state_of(scored, data), seed=step)
        assert scored["recall_path"][0].as_py() == "incremental"
        assert_equals_a_full_computation(scored, now, seed=step)
        data = now


@pytest.mark.parametrize("case, reason", [
    ("k", "full search: k changed since the stored exact answers"),
    ("share", "full search: "),
    ("off", "incremental is off"),
])
def test_the_full_path_runs_when_the_answers_cannot_be_updated(first, rng, case, reason):
    data, scored = first
    stored, previous = state_of(scored, data)
    vectors = dict(data.vectors)
    if case == "k":
        stored = stored.set_column(3, "recall_fingerprint", pa.array(["other"] * stored.num_rows))
    if case == "share":
        vectors.update(random_vectors(rng, [f"n{i:03d}" for i in range(200)]))
    now = Data(vectors)
    updated = score(now, (stored, previous), incremental=case != "off", max_change_share=0.2)
    assert updated["recall_path"][0].as_py() == "full"
    assert updated["recall_reason"][0].as_py().startswith(reason)
    assert updated["samples_searched"][0].as_py() == S
    assert_equals_a_full_computation(updated, now)


def test_fewer_datasets_than_k(rng):
    data = Data(random_vectors(rng, ["a", "b", "c"]))
    scored = score(data, noise=0)
    more = Data({**data.vectors, **random_vectors(rng, ["d"])})
    updated = score(more, state_of(scored, data), noise=0)
    # the k-NN lists are shorter than k (every other dataset): the measured k (their width) grew, a full search
    assert updated["recall_width"][0].as_py() == 3 and updated["recall_path"][0].as_py() == "full"
    assert_equals_a_full_computation(updated, more, noise=0)
    same = score(more, state_of(updated, more), noise=0)
    assert (same["recall_path"][0].as_py(), same["samples_searched"][0].as_py()) == ("incremental", 0)


def test_update_exact_answers_calls_no_search_when_nothing_changed(first):
    data, scored = first
    stored, previous = state_of(scored, data)

    def no_search():
        raise AssertionError("searched every embedding")

    answers = update_exact_answers(pa.array(data.sample()), data.current, K, stored=stored, previous=previous,
                                   rows_of=rows_reader(data.relation, data.con), search_space=no_search)
    assert (answers.path, answers.read_all, int(answers.searched.sum())) == ("incremental", False, 0)
    np.testing.assert_allclose(answers.kth, data.exact_kth(data.sample()), atol=1e-6)


def test_an_empty_sample_measures_one():
    summary = recall_summary(pa.table({"found": pa.array([], pa.int64()), "recall_width": pa.array([], pa.int64()),
                                       **{c: pa.array([], pa.int64()) for c in (
                                           "n_datasets", "k_neighbors", "ivf_pca_dims", "ivf_nlist", "ivf_nprobe",
                                           "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "hnsw_pca_dims",
                                           "samples_searched")},
                                       **{c: pa.array([], pa.string()) for c in (
                                           "knn_method", "recall_path", "recall_reason")},
                                       "recall_seconds": pa.array([], pa.float64())}))
    assert summary["recall_at_k"][0].as_py() == 1.0 and summary["recall_sample_size"][0].as_py() == 0
