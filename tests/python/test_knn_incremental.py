"""Incremental k-NN update against a brute-force numpy oracle of the current data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from test_knn import brute_force
from test_knn_approximate import clustered, oracle_recall

from mdc_clustering.embeddings import as_embeddings
from mdc_clustering.errors import ClusteringInputError
from mdc_clustering.neighbors import (
    HnswParams,
    IvfParams,
    PreviousKnn,
    decide_full_run,
    exact_knn,
    hnsw_knn,
    ivf_knn,
    knn_table,
    update_knn,
)


def table(ids, vectors):
    vectors = np.asarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1))
    return pa.table({"dataset_id": pa.array(ids, pa.string()),
                     "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})


def previous_of(ids, vectors, k):
    """The state a full exact run over ``ids`` stores."""
    emb = as_embeddings(table(ids, vectors))
    indices, sims = exact_knn(emb.matrix, k)
    return PreviousKnn(emb.ids, indices, sims)


def scenario(rng, *, n=300, d=16, k=10, new=0, removed=0, changed=0, vectors=None):
    """A previous run over ``n`` datasets, and the current datasets after the given changes."""
    ids = [f"a{i:05d}" for i in range(n)]
    x = rng.normal(size=(n, d)).astype(np.float32) if vectors is None else vectors
    previous = previous_of(ids, x, k)
    gone = set(rng.choice(n, removed, replace=False).tolist())
    left = [i for i in range(n) if i not in gone]
    moved = rng.choice(left, changed, replace=False) if changed else np.empty(0, int)
    cur = x[left].copy()
    position = {i: p for p, i in enumerate(left)}
    for i in moved:
        cur[position[i]] = rng.normal(size=d)
    cur_ids = [ids[i] for i in left] + [f"b{j:05d}" for j in range(new)]
    cur = np.concatenate([cur, rng.normal(size=(new, d)).astype(np.float32)])
    return previous, table(cur_ids, cur), [ids[i] for i in moved]


def assert_equals_full(update, current, k):
    """Same lists as a brute-force search of the current data: similarities, pairs, sets (ties tolerated)."""
    emb = as_embeddings(current)
    n = len(emb)
    got, got_sims = update.result.indices, update.result.similarities
    expected, expected_sims = brute_force(emb.matrix, k)
    assert got.shape == got_sims.shape == expected.shape == (n, min(k, n - 1))
    assert update.ids.equals(emb.ids)
    np.testing.assert_allclose(got_sims, expected_sims, atol=1e-5)
    unit = emb.matrix.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    np.testing.assert_allclose(got_sims, np.einsum("ij,ikj->ik", unit, unit[got]), atol=1e-5)
    for i in range(n):
        assert i not in got[i] and len(set(got[i])) == got.shape[1]
        # every neighbour clearly above the k-th similarity is found; only tied ones may differ
        clear = expected[i][expected_sims[i] > expected_sims[i, -1] + 1e-5]
        assert set(clear) <= set(got[i])


def assert_identical_to_exact_knn(update, current, k):
    """On continuous random data (no ties) the very same arrays as a full exact_knn."""
    indices, sims = exact_knn(as_embeddings(current).matrix, k)
    np.testing.assert_array_equal(update.result.indices, indices)
    np.testing.assert_allclose(update.result.similarities, sims, atol=1e-6)


@pytest.mark.parametrize(
    ("new", "removed", "changed", "batch"),
    [(15, 0, 0, None), (0, 12, 0, None), (0, 0, 10, None), (20, 8, 9, 7), (3, 1, 1, 1), (150, 100, 30, 64)],
)
def test_update_equals_a_full_recomputation(rng, new, removed, changed, batch):
    previous, current, moved = scenario(rng, new=new, removed=removed, changed=changed)
    update = update_knn(previous, current, 10, changed=moved, batch_rows=batch)
    assert_equals_full(update, current, 10)
    assert_identical_to_exact_knn(update, current, 10)
    s = update.stats
    assert (s.new, s.removed, s.changed) == (new, removed, changed)
    assert s.current_rows == 300 - removed + new and s.previous_rows == 300
    assert s.rows_searched == new + changed + s.lists_refilled < s.current_rows


def test_nothing_changed_keeps_every_list_and_searches_nothing(rng):
    previous, current, _ = scenario(rng)
    update = update_knn(previous, current, 10)
    np.testing.assert_array_equal(update.result.indices, previous.indices)
    np.testing.assert_array_equal(update.result.similarities, previous.similarities)
    assert update.changed_rows.size == 0
    assert update.stats.rows_searched == update.stats.lists_changed == update.stats.lists_entered == 0


def test_all_new_datasets(rng):
    # nothing carried over: every previous dataset removed, every current one new
    previous = previous_of([f"old{i}" for i in range(50)], rng.normal(size=(50, 8)), 5)
    current = table([f"new{i:03d}" for i in range(120)], rng.normal(size=(120, 8)))
    update = update_knn(previous, current, 5)
    assert_equals_full(update, current, 5)
    assert update.stats.rows_searched == 120 and update.stats.removed == 50
    np.testing.assert_array_equal(update.changed_rows, np.arange(120))
    # and from no previous run at all
    empty = PreviousKnn(pa.array([], pa.string()), np.empty((0, 0), np.int64), np.empty((0, 0), np.float32))
    assert_equals_full(update_knn(empty, current, 5), current, 5)


def test_current_ids_listed_as_changed_may_include_new_ones(rng):
    previous, current, moved = scenario(rng, new=5, changed=4)
    new_ids = [f"b{j:05d}" for j in range(5)]
    update = update_knn(previous, current, 10, changed=moved + new_ids)
    assert (update.stats.new, update.stats.changed) == (5, 4)
    assert_equals_full(update, current, 10)


@pytest.mark.parametrize(
    ("n_prev", "new", "removed", "k"), [(8, 6, 2, 30), (8, 0, 3, 7), (12, 30, 2, 11), (6, 3, 0, 5)]
)
def test_k_at_least_n_minus_one(rng, n_prev, new, removed, k):
    # the previous lists held every other dataset: lists that lose members need no search
    previous, current, moved = scenario(rng, n=n_prev, d=4, k=k, new=new, removed=removed, changed=1)
    update = update_knn(previous, current, k, changed=moved)
    assert_equals_full(update, current, k)
    assert update.stats.lists_refilled == 0


def test_a_removed_hub_leaves_every_list_it_was_in(rng):
    centre = np.full(12, 1 / np.sqrt(12))
    x = (centre + 0.5 * rng.normal(size=(400, 12))).astype(np.float32)
    x[123] = centre  # similar to everyone: in many lists
    previous, current, _ = scenario(rng, n=400, d=12, k=10, vectors=x)
    hub_lists = int((previous.indices == 123).any(axis=1).sum())
    assert hub_lists > 20
    ids = [f"a{i:05d}" for i in range(400)]
    keep = [i for i in range(400) if i != 123]
    current = table([ids[i] for i in keep], x[keep])
    update = update_knn(previous, current, 10)
    assert_equals_full(update, current, 10)
    assert update.stats.removed == 1 and update.stats.lists_refilled == hub_lists
    assert update.stats.lists_changed == hub_lists


def test_a_changed_dataset_leaves_lists_it_no_longer_qualifies_for_and_enters_new_ones(rng):
    previous, current, _ = scenario(rng, n=300, d=16, k=10)
    emb = as_embeddings(current)
    mover = 17
    before = set(np.flatnonzero((previous.indices == mover).any(axis=1)))
    matrix = emb.matrix.copy()
    matrix[mover] = matrix[250] + 0.01 * rng.normal(size=16).astype(np.float32)  # now right beside row 250
    current = table(emb.ids.to_pylist(), matrix)
    update = update_knn(previous, current, 10, changed=[emb.ids[mover].as_py()])
    assert_equals_full(update, current, 10)
    after = set(np.flatnonzero((update.result.indices == mover).any(axis=1)))
    assert 250 in after and before - after  # entered new lists, left old ones
    assert before | after | {mover} <= set(update.changed_rows)


def test_duplicate_vectors_tie_without_breaking_the_update(rng):
    base = rng.normal(size=(60, 6)).astype(np.float32)
    x = np.concatenate([base, base[:40], base[:20]])  # many exact ties
    previous, current, moved = scenario(rng, n=120, d=6, k=8, new=10, removed=6, changed=3, vectors=x)
    cur = as_embeddings(current)
    matrix = cur.matrix.copy()
    matrix[-5:] = matrix[:5]  # new rows duplicate carried-over ones
    current = table(cur.ids.to_pylist(), matrix)
    assert_equals_full(update_knn(previous, current, 8, changed=moved), current, 8)


def test_a_narrower_k_than_the_previous_lists(rng):
    previous, current, moved = scenario(rng, k=15, new=10, removed=5, changed=5)
    update = update_knn(previous, current, 10, changed=moved)
    assert_equals_full(update, current, 10)
    assert_identical_to_exact_knn(update, current, 10)


def test_a_wider_k_than_the_previous_lists_searches_every_carried_over_list(rng):
    previous, current, moved = scenario(rng, k=5, new=10, removed=5, changed=5)
    update = update_knn(previous, current, 10, changed=moved)
    assert_equals_full(update, current, 10)
    assert update.stats.rows_searched == update.stats.current_rows


def test_chained_updates_stay_exact(rng):
    previous, current, moved = scenario(rng, new=30, removed=10, changed=10)
    first = update_knn(previous, current, 10, changed=moved)
    emb = as_embeddings(current)
    matrix = np.concatenate([emb.matrix[20:], rng.normal(size=(25, 16)).astype(np.float32)])
    ids = emb.ids.to_pylist()[20:] + [f"c{j:03d}" for j in range(25)]
    matrix[:5] = rng.normal(size=(5, 16))
    later = table(ids, matrix)
    second = update_knn(first.state, later, 10, changed=ids[:5])
    assert_equals_full(second, later, 10)


def assert_prefixes_of_full(state, current, k, width):
    """Each state list is the row's most similar datasets: k to ``width`` of them, as a full search ranks them."""
    emb = as_embeddings(current)
    expected, expected_sims = brute_force(emb.matrix, width)
    unit = emb.matrix.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert state.ids.equals(emb.ids) and state.indices.shape == (len(emb), width)
    for i in range(len(emb)):
        members = state.indices[i][state.indices[i] >= 0]
        m = len(members)
        assert m >= k and np.all(state.indices[i][m:] == -1)
        np.testing.assert_allclose(state.similarities[i][:m], expected_sims[i][:m], atol=1e-5)
        np.testing.assert_allclose(state.similarities[i][:m], unit[members] @ unit[i], atol=1e-5)
        clear = expected[i][:m][expected_sims[i][:m] > expected_sims[i][m - 1] + 1e-5]
        assert set(clear) <= set(members) and i not in members


@pytest.mark.parametrize(("new", "removed", "changed"), [(15, 12, 6), (0, 30, 0), (60, 20, 20)])
def test_slack_keeps_lists_that_lost_members_exact_without_searching_them(rng, new, removed, changed):
    previous, current, moved = scenario(rng, k=15, new=new, removed=removed, changed=changed)  # 10 + 5 slack
    plain = update_knn(PreviousKnn(previous.ids, previous.indices[:, :10], previous.similarities[:, :10]),
                       current, 10, changed=moved)
    update = update_knn(previous, current, 10, changed=moved, slack=5)
    assert_equals_full(update, current, 10)
    assert_identical_to_exact_knn(update, current, 10)
    assert_prefixes_of_full(update.state, current, 10, 15)
    assert update.stats.lists_refilled < plain.stats.lists_refilled / 3
    assert update.stats.lists_partial > 0 and update.stats.rows_searched == new + changed + update.stats.lists_refilled
    np.testing.assert_array_equal(update.changed_rows, plain.changed_rows)
    # the partial state is the next update's start
    emb = as_embeddings(current)
    later_ids = emb.ids.to_pylist()[25:] + [f"c{j:03d}" for j in range(20)]
    later = table(later_ids, np.concatenate([emb.matrix[25:], rng.normal(size=(20, 16)).astype(np.float32)]))
    second = update_knn(update.state, later, 10, slack=5)
    assert_equals_full(second, later, 10)
    assert_prefixes_of_full(second.state, later, 10, 15)
    long = knn_table(second.state.ids, np.maximum(second.state.indices, 0), second.state.similarities)
    partial = long.filter(pa.array((second.state.indices >= 0).ravel()))
    back = PreviousKnn.from_table(partial)
    np.testing.assert_array_equal(back.indices, second.state.indices)


def test_changed_rows_are_the_rows_whose_list_differs(rng):
    previous, current, moved = scenario(rng, new=12, removed=6, changed=6)
    update = update_knn(previous, current, 10, changed=moved)
    emb = as_embeddings(current)
    prev_ids = previous.ids.to_pylist()
    prev_row = {name: i for i, name in enumerate(prev_ids)}
    ids = emb.ids.to_pylist()
    expected = []
    for i, name in enumerate(ids):
        if name not in prev_row or name in moved:
            expected.append(i)
            continue
        old = [prev_ids[j] for j in previous.indices[prev_row[name]]]
        new = [ids[j] for j in update.result.indices[i]]
        old_sims = previous.similarities[prev_row[name]]
        if old != new or any(m in moved for m in old) or not np.array_equal(old_sims, update.result.similarities[i]):
            expected.append(i)
    np.testing.assert_array_equal(update.changed_rows, expected)
    assert update.stats.lists_changed == len(expected)
    assert update.stats.lists_entered > 0


def test_previous_lists_read_from_the_long_table(rng):
    ids = [f"x{i:03d}" for i in range(40)]
    previous = previous_of(ids, rng.normal(size=(40, 5)), 6)
    long = knn_table(previous.ids, previous.indices, previous.similarities)
    # the stored table comes back in any row order
    back = PreviousKnn.from_table(long.take(rng.permutation(long.num_rows)))
    assert back.ids.equals(previous.ids)
    np.testing.assert_array_equal(back.indices, previous.indices)
    np.testing.assert_array_equal(back.similarities, previous.similarities)
    with pytest.raises(ClusteringInputError, match="neighbor_rank must run from 1"):
        PreviousKnn.from_table(long.slice(1))  # x000's rank 1 missing
    # a shorter list (the state of an update with slack) is padded
    short = PreviousKnn.from_table(long.slice(0, long.num_rows - 1))
    assert short.indices[-1, -1] == -1 and np.array_equal(short.indices[:, :-1], previous.indices[:, :-1])
    with pytest.raises(ClusteringInputError, match="not datasets"):
        PreviousKnn.from_table(long.filter(pa.compute.not_equal(long["dataset_id"].cast(pa.string()), "x000")))


def test_bad_inputs_raise_clear_errors(rng):
    previous, current, _ = scenario(rng, n=30, d=4, k=3)
    with pytest.raises(ClusteringInputError, match="not current datasets"):
        update_knn(previous, current, 3, changed=["nope"])
    with pytest.raises(ClusteringInputError, match="method"):
        update_knn(previous, current, 3, method="annoy")
    bad = PreviousKnn(previous.ids, previous.indices[:5], previous.similarities[:5])
    with pytest.raises(ClusteringInputError, match="one row per previous id"):
        update_knn(bad, current, 3)


def test_decide_full_run_says_why():
    small = decide_full_run(10_000, new=300, changed=100, removed=50)
    assert not small.full and small.change_share == pytest.approx(450 / 10_300)
    assert "incremental update" in small.reason and "300 new" in small.reason
    big = decide_full_run(10_000, new=2_000, changed=500, removed=100)
    assert big.full and "above incremental_max_change_share 0.2" in big.reason
    assert not decide_full_run(10_000, new=2_000, changed=500, removed=100, max_change_share=0.3).full
    assert decide_full_run(0, new=10, changed=0, removed=0).full
    wider = decide_full_run(10_000, new=10, changed=0, removed=0, k=30, previous_width=15)
    assert wider.full and "hold 15 neighbours" in wider.reason
    # lists that held every other dataset can grow
    assert not decide_full_run(10, new=1, changed=0, removed=0, k=30, previous_width=9).full
    with pytest.raises(ClusteringInputError):
        decide_full_run(10, new=0, changed=8, removed=5)


@pytest.mark.parametrize(
    ("method", "params"),
    [("hnsw", HnswParams(m=16, ef_construction=40, ef_search=32)), ("ivf", IvfParams())],
)
def test_approximate_update_keeps_recall(rng, method, params):
    x = clustered(rng, n=4000, d=32)
    ids = [f"a{i:05d}" for i in range(4000)]
    old = rng.permutation(4000)
    prev_rows = np.sort(old[:3800])  # 5% new
    removed = prev_rows[:20]
    emb = as_embeddings(table([ids[i] for i in prev_rows], x[prev_rows]))
    indices, sims = exact_knn(emb.matrix, 15)
    previous = PreviousKnn(emb.ids, indices, sims)
    rows = np.setdiff1d(np.arange(4000), removed)
    current = table([ids[i] for i in rows], x[rows])
    update = update_knn(previous, current, 15, method=method, params=params)
    cur = as_embeddings(current)
    expected, _ = brute_force(cur.matrix, 15)
    got = update.result.indices
    recall = np.mean([len(set(got[i]) & set(expected[i])) / 15 for i in range(len(cur))])
    assert recall >= 0.95
    # the new rows entered the carried-over lists they belong to (found through candidates only), mostly
    is_new = ~np.isin(cur.ids.to_numpy(zero_copy_only=False), emb.ids.to_numpy(zero_copy_only=False))
    carried = np.flatnonzero(~is_new)
    should = [(i, j) for i in carried for j in expected[i] if is_new[j]]
    entered = sum(j in got[i] for i, j in should)
    assert len(should) > 300 and entered >= 0.9 * len(should)
    assert update.stats.rows_searched < len(cur) / 2
    assert not np.any(got == np.arange(len(cur))[:, None])


@pytest.mark.parametrize(
    ("search", "params"), [(hnsw_knn, HnswParams(m=16, ef_construction=40, ef_search=32)), (ivf_knn, IvfParams())]
)
def test_approximate_backends_search_only_the_rows_asked(rng, search, params):
    x = clustered(rng, n=2500, d=24)
    rows = np.sort(rng.choice(2500, 300, replace=False))[::-1].copy()  # any order
    whole = search(x, 10, params)
    part = search(x, 10, params, rows=rows)
    assert part.indices.shape == (300, 10)
    np.testing.assert_array_equal(part.indices, whole.indices[rows])
    np.testing.assert_array_equal(part.similarities, whole.similarities[rows])


def test_a_stored_ivf_model_is_searched_through_and_refused_when_it_does_not_fit(rng, monkeypatch):
    from mdc_clustering.neighbors import IvfModel, _ivf

    # clusters in a 12-dimensional subspace of 48: a 16-dim projection keeps the neighbours
    x = clustered(rng, n=4000, d=12) @ rng.normal(size=(12, 48)).astype(np.float32)
    x += 0.01 * rng.normal(size=x.shape).astype(np.float32)
    params = IvfParams(pca_dims=16, min_recall=0.95)
    first = ivf_knn(x[:3800], 15, params)
    assert first.model_reused is False and first.model.basis.shape == (48, first.search_dims)
    model = IvfModel.from_bytes(first.model.to_bytes())  # as the state table stores it
    assert model.nprobe == first.nprobe and model.trained_rows == 3800 and model.dim == 48
    np.testing.assert_array_equal(model.basis, first.model.basis)
    # the re-run fits neither axes nor cells, nor runs a pilot
    monkeypatch.setattr(_ivf, "pca_basis", lambda *a, **k: pytest.fail("principal axes fitted again"))
    rows = np.arange(3800, 4000)
    again = ivf_knn(x, 15, params, rows=rows, model=model)
    assert again.model_reused is True and again.model is model and again.pilot_recall is None
    assert (again.nlist, again.nprobe, again.search_dims) == (first.nlist, first.nprobe, first.search_dims)
    expected, expected_sims = brute_force(x, 15)
    assert oracle_recall(again.indices, expected[rows], range(len(rows))) >= 0.95
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(again.similarities, np.einsum("ij,ikj->ik", unit[rows], unit[again.indices]), atol=1e-5)
    # twice the rows, or another dimension: trained afresh (here that would fit the axes again)
    assert not model.fits(8000, 48) and not model.fits(3800, 32) and model.fits(3040, 48)
    assert IvfModel.from_bytes(b"not an index") is None and IvfModel.from_bytes(None) is None


def test_an_update_passes_the_stored_ivf_model_to_its_search(rng):
    from mdc_clustering.neighbors import IvfModel

    x = clustered(rng, n=3000, d=32)
    ids = [f"a{i:05d}" for i in range(3000)]
    old = table(ids[:2900], x[:2900])
    full = ivf_knn(as_embeddings(old).matrix, 10, IvfParams(min_recall=0.95))
    previous = PreviousKnn(as_embeddings(old).ids, full.indices, full.similarities)
    update = update_knn(previous, table(ids, x), 10, method="ivf", params=IvfParams(min_recall=0.95),
                        ivf_model=IvfModel.from_bytes(full.model.to_bytes()))
    assert update.result.model_reused is True and update.stats.rows_searched == 100
    expected, _ = brute_force(x, 10)
    assert oracle_recall(update.result.indices, expected, range(3000)) >= 0.95


def with_hashes(current):
    from mdc_clustering.stages.pull import embedding_hashes

    n, d = current.num_rows, current.schema.field("embedding").type.list_size
    matrix = current.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, d)
    return current.append_column("embedding_hash", pa.array(embedding_hashes(matrix), pa.int64()))


STATE_COLUMNS = ["dataset_id", "neighbor_id", "neighbor_rank", "similarity", "embedding_hash", "knn_fingerprint"]


def test_the_model_returns_only_changed_lists_and_the_stored_lists_they_overwrite_equal_brute_force(rng):
    from mdc_clustering.stages.neighbor_search import updated_neighbors

    ids = [f"a{i:05d}" for i in range(300)]
    x = rng.normal(size=(300, 16)).astype(np.float32)
    state = updated_neighbors(with_hashes(table(ids, x)), 10, changed_only=True)
    assert state.num_rows == 300 * 10 and pa.compute.all(state["list_changed"]).as_py()
    state = state.select(STATE_COLUMNS)
    # 6 removed, 5 changed, 12 new
    left = np.setdiff1d(np.arange(300), rng.choice(300, 6, replace=False))
    cur_x = x[left].copy()
    cur_x[rng.choice(len(left), 5, replace=False)] = rng.normal(size=(5, 16))
    cur_x = np.concatenate([cur_x, rng.normal(size=(12, 16)).astype(np.float32)])
    cur_ids = [ids[i] for i in left] + [f"b{j:05d}" for j in range(12)]
    cur = with_hashes(table(cur_ids, cur_x))
    # integer keys, not dense and not in id order (as the cache gives them: new datasets above the rest)
    key_of = {name: 1000 + 7 * i for i, name in enumerate(rng.permutation(cur_ids).tolist())}
    keys = pa.table({"dataset_id": list(key_of), "dataset_key": list(key_of.values())})
    returned = updated_neighbors(cur, 10, state=state, changed_only=True, keys=keys)
    full = updated_neighbors(cur, 10, state=state)
    assert set(returned["knn_path"].to_pylist()) == {"incremental"}
    # each row names its owner and neighbour by key too, the keys of its ids
    for r in returned.select(["dataset_id", "neighbor_id", "dataset_key", "neighbor_key"]).to_pylist():
        assert (r["dataset_key"], r["neighbor_key"]) == (key_of[r["dataset_id"]], key_of[r["neighbor_id"]])
    # only the changed lists come back: the full table's list_changed rows, no more
    changed_ids = set(full.filter(full["list_changed"])["dataset_id"].cast(pa.string()).to_pylist())
    assert set(returned["dataset_id"].cast(pa.string()).to_pylist()) == changed_ids
    assert 12 + 5 <= len(changed_ids) < len(cur_ids)
    assert pa.compute.all(returned["list_changed"]).as_py()
    # written over the stored lists (knn_state: the pre-hook drops departed datasets, delete+insert by
    # dataset), they give a brute-force search of the current data
    written = set(changed_ids)
    stored = [r for r in state.to_pylist() if r["dataset_id"] in set(cur_ids) and r["dataset_id"] not in written]
    stored += [{c: r[c] for c in STATE_COLUMNS} for r in returned.to_pylist()]
    lists = {}
    for r in stored:
        assert lists.setdefault(r["dataset_id"], {}).setdefault(r["neighbor_rank"], r) is r  # no duplicate rank
    emb = as_embeddings(cur)
    expected, expected_sims = brute_force(emb.matrix, 10)
    names = emb.ids.to_pylist()
    assert set(lists) == set(names)
    for i, name in enumerate(names):
        got = [lists[name][rank] for rank in range(1, 11)]
        np.testing.assert_allclose([r["similarity"] for r in got], expected_sims[i], atol=1e-5)
        assert [r["neighbor_id"] for r in got] == [names[j] for j in expected[i]]


def test_nothing_changed_returns_one_unchanged_list_that_carries_the_run_facts(rng):
    from mdc_clustering.stages.neighbor_search import updated_neighbors

    ids = [f"a{i:05d}" for i in range(50)]
    cur = with_hashes(table(ids, rng.normal(size=(50, 8))))
    state = updated_neighbors(cur, 5, changed_only=True)
    state = state.select(["dataset_id", "neighbor_id", "neighbor_rank", "similarity", "embedding_hash",
                          "knn_fingerprint"])
    again = updated_neighbors(cur, 5, state=state, changed_only=True)
    assert again["dataset_id"].cast(pa.string()).to_pylist() == ["a00000"] * 5
    assert again["list_changed"].to_pylist() == [False] * 5
    assert set(again["knn_path"].to_pylist()) == {"incremental"}
    assert set(again["search_dims"].to_pylist()) == {8}
    assert again["neighbor_id"].cast(pa.string()).to_pylist() == state["neighbor_id"].cast(pa.string()).to_pylist()[:5]


def test_stored_lists_under_other_keys_are_searched_again_with_the_reason(rng):
    from mdc_clustering.stages.neighbor_search import updated_neighbors

    ids = [f"a{i:05d}" for i in range(40)]
    cur = with_hashes(table(ids, rng.normal(size=(40, 8))))
    state = updated_neighbors(cur, 5, changed_only=True).select(STATE_COLUMNS)
    again = updated_neighbors(cur, 5, state=state, changed_only=True, stale_state="the keys differ")
    assert set(again["knn_path"].to_pylist()) == {"full"}
    assert set(again["knn_reason"].to_pylist()) == {"full search: the keys differ"}
    assert again.num_rows == 40 * 5
    with pytest.raises(ClusteringInputError, match=r"datasets without a dataset_key: \['a00039'\]"):
        updated_neighbors(cur, 5, keys=pa.table({"dataset_id": ids[:-1], "dataset_key": list(range(39))}))


def test_lists_stored_by_key_update_exactly_as_lists_stored_by_id(rng):
    """The dbt model reads the stored lists by key (no string per row); the lists by id are the oracle."""
    from mdc_clustering.stages.neighbor_search import updated_neighbors

    ids = [f"a{i:05d}" for i in range(200)]
    x = rng.normal(size=(200, 12)).astype(np.float32)
    key_of = {name: 3 * i + 11 for i, name in enumerate(rng.permutation(ids).tolist())}

    def keys_of(names):
        return pa.table({"dataset_id": names, "dataset_key": [key_of[n] for n in names]})

    first = updated_neighbors(with_hashes(table(ids, x)), 8, changed_only=True, keys=keys_of(ids))
    by_id = first.select(STATE_COLUMNS)
    by_key = first.select(["dataset_key", "neighbor_key", "neighbor_rank", "similarity"])
    owners = first.filter(pa.compute.equal(first["neighbor_rank"], 1)).select(
        ["dataset_id", "embedding_hash", "dataset_key"])
    owners = owners.set_column(0, "dataset_id", owners["dataset_id"].cast(pa.string()))
    # the same previous lists either way
    want, got = PreviousKnn.from_table(by_id), PreviousKnn.from_keyed_table(by_key, owners)
    assert got.ids.to_pylist() == want.ids.to_pylist()
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.similarities, want.similarities)
    # 5 removed, 4 changed, 9 new: the same update either way
    left = np.setdiff1d(np.arange(200), rng.choice(200, 5, replace=False))
    cur_x = x[left].copy()
    cur_x[rng.choice(len(left), 4, replace=False)] = rng.normal(size=(4, 12))
    cur_x = np.concatenate([cur_x, rng.normal(size=(9, 12)).astype(np.float32)])
    cur_ids = [ids[i] for i in left] + [f"b{j:05d}" for j in range(9)]
    key_of.update({f"b{j:05d}": 1000 + j for j in range(9)})
    cur = with_hashes(table(cur_ids, cur_x))
    fingerprints = sorted(set(first["knn_fingerprint"].to_pylist()))
    a = updated_neighbors(cur, 8, state=by_id, changed_only=True, keys=keys_of(cur_ids))
    b = updated_neighbors(cur, 8, state=by_key, state_hashes=owners, state_fingerprints=fingerprints,
                          changed_only=True, keys=keys_of(cur_ids))
    assert set(b["knn_path"].to_pylist()) == {"incremental"}
    assert b.to_pylist() == a.to_pylist()
    # the dbt model passes a function that reads the lists (so that the update can let them go)
    read = []
    c = updated_neighbors(cur, 8, state=lambda: read.append(1) or by_key, state_hashes=owners,
                          state_fingerprints=fingerprints, changed_only=True, keys=keys_of(cur_ids))
    assert read == [1] and c.to_pylist() == a.to_pylist()
    updated_neighbors(cur, 8, state=lambda: read.append(2) or by_key, incremental=False, keys=keys_of(cur_ids))
    assert read == [1]  # not read at all on the full path the settings ask for
    # keys that name no owner, or two owners with one key, are refused
    with pytest.raises(ClusteringInputError, match="8 dataset_key values are not keys of the owners"):
        PreviousKnn.from_keyed_table(by_key, owners.filter(pa.compute.not_equal(owners["dataset_id"], ids[0])))
    twice = owners.set_column(2, "dataset_key", pa.array([11] * owners.num_rows))
    with pytest.raises(ClusteringInputError, match="two datasets share a key"):
        PreviousKnn.from_keyed_table(by_key, twice)


def test_lists_stored_under_other_keys_than_the_cache_gives_now_are_searched_again(rng):
    from mdc_clustering.stages.neighbor_search import updated_neighbors

    ids = [f"a{i:05d}" for i in range(60)]
    cur = with_hashes(table(ids, rng.normal(size=(60, 8))))
    keys = pa.table({"dataset_id": ids, "dataset_key": list(range(60))})
    first = updated_neighbors(cur, 5, changed_only=True, keys=keys)
    by_key = first.select(["dataset_key", "neighbor_key", "neighbor_rank", "similarity"])
    owners = first.filter(pa.compute.equal(first["neighbor_rank"], 1)).select(
        ["dataset_id", "embedding_hash", "dataset_key"])
    owners = owners.set_column(0, "dataset_id", owners["dataset_id"].cast(pa.string()))
    fingerprints = sorted(set(first["knn_fingerprint"].to_pylist()))
    same = updated_neighbors(cur, 5, state=by_key, state_hashes=owners, state_fingerprints=fingerprints,
                             changed_only=True, keys=keys)
    assert set(same["knn_path"].to_pylist()) == {"incremental"}
    # two datasets swap keys in the cache: the stored lists would name the wrong datasets
    swapped = pa.table({"dataset_id": ids, "dataset_key": [1, 0] + list(range(2, 60))})
    again = updated_neighbors(cur, 5, state=by_key, state_hashes=owners, state_fingerprints=fingerprints,
                              changed_only=True, keys=swapped)
    assert set(again["knn_path"].to_pylist()) == {"full"}
    assert set(again["knn_reason"].to_pylist()) == {
        "full search: 2 stored lists name their dataset by another key than the embedding cache's"}
    assert again.num_rows == 60 * 5


def test_with_nothing_to_update_the_stored_first_list_gives_what_the_update_gives(rng):
    """The dbt model skips the matrix and the lists when nothing changed; the update run in full is the oracle."""
    from mdc_clustering.stages.neighbor_search import lists_unchanged, unchanged_neighbors, updated_neighbors

    ids = [f"a{i:05d}" for i in range(120)]
    x = rng.normal(size=(120, 10)).astype(np.float32)
    keys = pa.table({"dataset_id": ids, "dataset_key": rng.permutation(120).astype(np.int32) + 7})
    cur = with_hashes(table(ids, x))
    stored = updated_neighbors(cur, 6, changed_only=True, keys=keys)  # a first run: every list
    fingerprint = stored["knn_fingerprint"][0].as_py()
    owners = stored.filter(pa.compute.equal(stored["neighbor_rank"], 1)).select(
        ["dataset_id", "embedding_hash", "dataset_key"])
    owners = owners.set_column(0, "dataset_id", owners["dataset_id"].cast(pa.string()))
    hashes = cur.select(["dataset_id", "embedding_hash"]).append_column(
        "dataset_key", keys["dataset_key"])
    assert lists_unchanged(hashes, fingerprint, [fingerprint], owners)
    want = updated_neighbors(cur, 6, state=stored.select(STATE_COLUMNS), changed_only=True, keys=keys)
    first = stored.filter(pa.compute.equal(stored["dataset_id"].cast(pa.string()), "a00000"))
    got = unchanged_neighbors(first.select(["dataset_id", "neighbor_id", "dataset_key", "neighbor_key",
                                            "neighbor_rank", "similarity", "embedding_hash"]).take([3, 0, 5, 1, 4, 2]),
                              6, 10, 120, fingerprint)
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()
    # anything to update, and the stored lists are not this run's
    other = hashes.set_column(1, "embedding_hash",
                              pa.array([-1] + hashes["embedding_hash"].to_pylist()[1:], pa.int64()))
    swapped = hashes.set_column(2, "dataset_key", pa.array(hashes["dataset_key"].to_numpy()[::-1].copy()))
    for current, prints, why in [
        (hashes.slice(1), [fingerprint], "a dataset left"),
        (pa.concat_tables([hashes, pa.table({"dataset_id": ["new"], "embedding_hash": pa.array([5], pa.int64()),
                                             "dataset_key": pa.array([999], pa.int32())})]),
         [fingerprint], "a new one"),
        (other, [fingerprint], "an embedding changed"),
        (swapped, [fingerprint], "keys differ"),
        (hashes, ["another"], "other settings"),
        (hashes, [fingerprint, "another"], "lists under two settings"),
    ]:
        assert not lists_unchanged(current, fingerprint, prints, owners), why
    with pytest.raises(ClusteringInputError, match="first_list must be one dataset's stored list"):
        unchanged_neighbors(stored.slice(0, 12).select(first.column_names), 6, 10, 120, fingerprint)


@pytest.mark.parametrize("method", ["exact", "ivf"])
def test_rows_normalised_as_read_give_the_lists_of_the_raw_rows(rng, method, monkeypatch):
    """The dbt model reads unit rows (no normalised copy of the matrix); the raw rows are the oracle."""
    import mdc_clustering.neighbors._ivf as ivf_module
    from mdc_clustering.embeddings import Embeddings, _normalize_in_place
    from mdc_clustering.neighbors import IvfParams
    from mdc_clustering.stages.neighbor_search import updated_neighbors

    monkeypatch.setattr(ivf_module, "IVF_MIN_ROWS", 100)
    ids = [f"a{i:05d}" for i in range(400)]
    x = (rng.normal(size=(400, 12)) * rng.uniform(0.5, 3.0, (400, 1))).astype(np.float32)
    raw = with_hashes(table(ids, x))
    params = IvfParams(pca_dims=None, nlist=8, nprobe=4, min_recall=None) if method == "ivf" else None
    unit = x.copy()
    norms = _normalize_in_place(unit)
    normalised = Embeddings(raw["dataset_id"].combine_chunks(), unit, True, norms)
    hashes = raw.select(["dataset_id", "embedding_hash"])
    first_raw = updated_neighbors(raw, 7, method=method, params=params, changed_only=True)
    first_unit = updated_neighbors(normalised, 7, hashes=hashes, method=method, params=params, changed_only=True)
    assert first_unit.drop_columns(["ivf_model"]).to_pylist() == first_raw.drop_columns(["ivf_model"]).to_pylist()
    state = first_raw.select(STATE_COLUMNS)
    grown = np.concatenate([x, rng.normal(size=(8, 12)).astype(np.float32)])
    grown_ids = ids + [f"b{j:05d}" for j in range(8)]
    raw2 = with_hashes(table(grown_ids, grown))
    unit2 = grown.copy()
    norms2 = _normalize_in_place(unit2)
    a = updated_neighbors(raw2, 7, method=method, params=params, state=state, changed_only=True)
    b = updated_neighbors(Embeddings(raw2["dataset_id"].combine_chunks(), unit2, True, norms2), 7,
                          hashes=raw2.select(["dataset_id", "embedding_hash"]), method=method, params=params,
                          state=state, changed_only=True)
    assert set(b["knn_path"].to_pylist()) == {"incremental"}
    assert b.drop_columns(["ivf_model"]).to_pylist() == a.drop_columns(["ivf_model"]).to_pylist()
