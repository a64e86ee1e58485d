"""condense.neighbours: exact kNN (faiss identities, float64 distances) and k-means selection."""
import faiss
import numpy as np
import pytest
import torch

from condense.data import load_dataset
from condense.neighbours import NeighbourIndex, flat_l2_index, kmeans_nearest, knn, nearest_distance


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_knn_is_exact(digits):  # moved from test_audit_memorization.py
    x = digits.denormalize(digits.train_x[:200]).clamp(0, 1)
    q = digits.denormalize(digits.test_x[:50]).clamp(0, 1)
    dist, idx = knn(q, x, 3)
    brute = torch.cdist(q.double().flatten(1), x.double().flatten(1))
    ref_d, ref_i = brute.topk(3, largest=False)
    assert np.allclose(dist, ref_d.numpy(), atol=1e-9) and (idx[:, 0] == ref_i[:, 0].numpy()).all()
    assert knn(x[:5], x, 1)[0].max() == 0.0  # exact copies: exactly zero, not float32 noise


def test_search_returns_exact_float64_distances_in_ascending_order():
    g = torch.Generator().manual_seed(0)
    # far from the origin and close together: faiss's ‖x‖² + ‖y‖² − 2⟨x, y⟩ in float32 is coarse here
    # (≥ 20 queries: faiss then takes its BLAS path, the one with the cancellation)
    base = (100 + torch.randn(60, 16, generator=g, dtype=torch.float64) * 1e-2).float()
    queries = torch.cat([base[:20].clone(), base[20:40] + 1e-3 * torch.randn(20, 16, generator=g)])
    index = NeighbourIndex(base)
    assert len(index) == 60 and index.dim == 16
    dist, idx = index.search(queries, 5)
    assert dist.shape == idx.shape == (40, 5) and dist.dtype == np.float64 and idx.dtype == np.int64
    ref = torch.cdist(queries.double(), base.double())
    # each distance is the exact L2 distance to the row it names, and the rows are the 5 nearest
    assert np.allclose(dist, np.take_along_axis(ref.numpy(), idx, 1), rtol=0, atol=1e-12)
    assert np.allclose(dist, ref.topk(5, largest=False).values.numpy(), rtol=0, atol=1e-12)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert (dist[:20, 0] == 0.0).all() and (idx[:20, 0] == np.arange(20)).all()  # copies: exactly 0, themselves
    assert (idx[20:, 0] == np.arange(20, 40)).all() and (dist[20:, 0] > 0).all()


def test_search_takes_tensors_or_arrays_of_any_row_shape_and_caps_k():
    g = np.random.default_rng(1)
    base = g.standard_normal((6, 1, 3, 3))
    index = NeighbourIndex(torch.from_numpy(base))
    dist, idx = index.search(base[:2], k=50)  # k is capped at the index size
    assert dist.shape == idx.shape == (2, 6) and sorted(idx[0].tolist()) == list(range(6))
    assert (np.diff(dist, axis=1) >= 0).all()
    assert np.allclose(dist[1], np.sqrt(((base.reshape(6, -1) - base[1].reshape(1, -1)) ** 2).sum(1))[idx[1]])
    with pytest.raises(ValueError, match="features"):
        index.search(np.zeros((1, 8)))


def test_nearest_distance_is_the_first_column_of_knn():
    g = np.random.default_rng(2)
    base, q = g.standard_normal((40, 5)), g.standard_normal((7, 5))
    ref = np.sqrt(((q[:, None] - base[None].astype(np.float32).astype(np.float64)) ** 2).sum(-1)).min(1)
    assert np.allclose(nearest_distance(q, base), ref, atol=1e-6)
    assert np.array_equal(nearest_distance(q, base), knn(q, base, 3)[0][:, 0])


def test_flat_l2_index_returns_faiss_squared_distances():
    base = np.array([[0, 0], [3, 4], [6, 8], [1, 0]], dtype=np.float32)
    index = flat_l2_index(base)
    assert isinstance(index, faiss.IndexFlatL2) and index.ntotal == 4 and index.d == 2
    d, i = index.search(np.zeros((1, 2), dtype=np.float32), 4)
    assert i[0].tolist() == [0, 3, 1, 2] and d.dtype == np.float32
    assert d[0].tolist() == [0.0, 1.0, 25.0, 100.0]  # squared, not 5 and 10
    q = np.random.default_rng(3).standard_normal((5, 2)).astype(np.float32)
    d, i = index.search(q, 2)
    ref = ((q[:, None].astype(np.float64) - base[None]) ** 2).sum(-1)
    assert np.allclose(d, np.take_along_axis(ref, i, 1), rtol=1e-5, atol=1e-5)


def test_kmeans_takes_the_real_point_nearest_each_centroid():  # moved from test_coresets.py
    g = np.random.default_rng(0)
    blobs = [g.normal(loc, 0.1, size=(20, 2)) for loc in ((0, 0), (10, 0), (0, 10))]
    feats = np.concatenate(blobs).astype(np.float32)
    picked = kmeans_nearest(feats, 3, seed=1)
    assert sorted(i // 20 for i in picked) == [0, 1, 2] and len(set(picked)) == 3
    for i in picked:  # each pick is the member nearest its blob's mean (≈ the centroid)
        blob = feats[(i // 20) * 20:(i // 20 + 1) * 20]
        assert np.argmin(((blob - blob.mean(0)) ** 2).sum(1)) == i % 20


def test_kmeans_nearest_returns_k_distinct_rows_deterministically():
    feats = torch.randn(60, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    for k in (1, 5, 12):
        picked = kmeans_nearest(feats, k, seed=7)
        assert len(picked) == k and len(set(picked)) == k and all(isinstance(i, int) and 0 <= i < 60 for i in picked)
        assert kmeans_nearest(feats, k, seed=7) == picked
        assert kmeans_nearest(feats.numpy(), k, seed=7) == picked  # tensors and arrays alike
    # a centroid whose nearest row is taken gets its next nearest one: even k = N gives N distinct rows
    small = feats[:8]
    assert sorted(kmeans_nearest(small, 8, seed=0)) == list(range(8))
