"""Gradient embeddings (condense.synth.grad_embed), greedy GraphCut (condense.synth.submodular) and the graphcut
coreset: the factors against torch.func's full gradients, the gains against a brute-force GraphCut, the three
greedy orders against each other, and the method on digits."""
import numpy as np
import pytest
import torch

from condense.data import load_dataset
from condense.errors import CondenseError
from condense.models import create_model, save_network
from condense.synth import distill, grad_embed
from condense.synth.grad_embed import GradEmbedding, dense_gradients, gradient_embeddings
from condense.synth.submodular import graphcut_gains, greedy_graphcut

FAST = {"model_args": {"width": 8}, "device": "cpu", "embed_epochs": 1, "max_per_class": 40}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))


def toy(n=7, k=3, d=4, seed=0, positive=False):
    g = torch.Generator().manual_seed(seed)
    bias, feats = torch.randn(n, k, generator=g), torch.randn(n, d, generator=g)
    if positive:  # softmax − one-hot of one class and ReLU features: every similarity ≥ 0
        bias = torch.softmax(bias, 1) - torch.nn.functional.one_hot(torch.zeros(n, dtype=torch.long), k)
        feats = feats.abs()
    return GradEmbedding(bias, feats)


def graphcut_value(sim, pool, subset, lam):
    """The definition: λ Σ_{i∈pool} Σ_{j∈S} s_ij − Σ_{i∈S} Σ_{j∈S} s_ij."""
    s = list(subset)
    return lam * sim[np.ix_(pool, s)].sum() - sim[np.ix_(s, s)].sum()


@pytest.mark.parametrize("gradient", ["ce", "deepcore"])
def test_factors_are_the_last_layer_gradients_of_torch_func(gradient):
    data = load_dataset("digits", max_per_class=3)
    torch.manual_seed(0)
    net = create_model("ConvNet", 1, 10, (8, 8), width=8)
    emb = gradient_embeddings(net, data.train_x, data.train_y, gradient, batch=7)
    full = dense_gradients(net, data.train_x, data.train_y, gradient)
    assert full.shape == (30, 10 + 10 * net.feature_dim)
    assert torch.allclose(emb.dense(), full, atol=1e-6)  # [g, vec(g eᵀ)] is the gradient of (b, W)
    unit = torch.nn.functional.normalize(full.double(), dim=1)
    assert torch.allclose(emb.cosine().double(), unit @ unit.T, atol=1e-5)
    if gradient == "ce":  # the bias gradient of cross-entropy is softmax − one-hot
        want = torch.softmax(net(data.train_x), 1) - torch.nn.functional.one_hot(data.train_y, 10)
        assert torch.allclose(emb.bias, want, atol=1e-6)


def test_graphcut_gains_match_a_brute_force_graphcut():
    emb = toy()
    sim = emb.cosine().double().numpy()
    unit = torch.nn.functional.normalize(emb.dense().double(), dim=1)
    assert np.allclose(sim, (unit @ unit.T).numpy(), atol=1e-6)
    pool = np.array([True, True, False, True, True, True, True])
    members = np.flatnonzero(pool)
    for lam in (0.5, 1.0, 2.0):
        for chosen in ([], [0], [3, 5], [1, 4, 6]):
            gains = graphcut_gains(sim, pool, chosen, lam)
            for x in set(members) - set(chosen):
                brute = graphcut_value(sim, members, chosen + [x], lam) - graphcut_value(sim, members, chosen, lam)
                assert gains[x] == pytest.approx(brute + sim[x, x], abs=1e-9)  # the gain leaves out s_xx


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_naive_greedy_takes_the_brute_force_best_image_at_every_step(lam):
    emb = toy(n=8)
    sim = emb.cosine().double().numpy()
    picks = greedy_graphcut(emb, 5, lam, "naive")
    chosen = []
    for p in picks:
        free = [x for x in range(8) if x not in chosen]
        marginal = [graphcut_value(sim, range(8), chosen + [x], lam) - graphcut_value(sim, range(8), chosen, lam)
                    for x in free]
        assert free[int(np.argmax(marginal))] == p
        chosen.append(p)
    assert len(set(picks)) == 5


def test_lazy_and_full_stochastic_greedy_agree_with_naive():
    emb = toy(n=40, k=4, d=6, positive=True)
    pool = np.ones(40, dtype=bool)
    pool[[3, 9, 17]] = False
    naive = greedy_graphcut(emb, 12, 1.0, "naive", pool=pool)
    assert greedy_graphcut(emb, 12, 1.0, "lazy", pool=pool) == naive
    # ε so small that every free image is scored: stochastic greedy is then the exact greedy, from the factors
    assert greedy_graphcut(emb, 12, 1.0, "stochastic", pool=pool, epsilon=1e-30) == naive
    some = greedy_graphcut(emb, 12, 1.0, "stochastic", pool=pool, epsilon=0.3,
                           generator=torch.Generator().manual_seed(1))
    assert len(set(some)) == 12 and not set(some) & {3, 9, 17}
    assert some == greedy_graphcut(emb, 12, 1.0, "stochastic", pool=pool, epsilon=0.3,
                                   generator=torch.Generator().manual_seed(1))
    signed = toy(n=20)  # negative similarities: lazy falls back to naive, same picks
    assert greedy_graphcut(signed, 6, 1.0, "lazy") == greedy_graphcut(signed, 6, 1.0, "naive")
    with pytest.raises(CondenseError, match="Unknown greedy 'fast'"):
        greedy_graphcut(emb, 2, 1.0, "fast")


def test_graphcut_coreset_takes_distinct_real_images_per_class_and_reuses_its_cache(monkeypatch):
    synth = distill("graphcut", "digits", 3, **FAST)
    data = load_dataset("digits", max_per_class=40)
    rows = synth.source_indices
    assert torch.equal(torch.bincount(synth.labels, minlength=10), torch.full((10,), 3))
    assert len(set(rows.tolist())) == 30 and torch.equal(synth.images, data.train_x[rows])
    assert torch.equal(synth.labels, data.train_y[rows])
    assert synth.config["embedding_network"]["trained"]["epochs"] == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached network should have been used")

    monkeypatch.setattr(grad_embed, "feature_network", no_training)
    monkeypatch.setattr(grad_embed, "gradient_embeddings", no_training)
    again = distill("graphcut", "digits", 3, **FAST)  # network and embeddings from the cache: the same picks
    assert torch.equal(again.source_indices, rows)
    lazy = distill("graphcut", "digits", 3, **{**FAST, "greedy": "lazy"})
    assert torch.equal(lazy.source_indices, rows)


def test_graphcut_with_a_teacher_ignores_the_seed(tmp_path):
    torch.manual_seed(3)
    data = load_dataset("digits", max_per_class=40)
    path = save_network(str(tmp_path / "t.h5"), create_model("ConvNet", 1, 10, (8, 8), width=8), architecture="ConvNet",
                        model_args={"width": 8}, channels=1, num_classes=10, image_size=(8, 8), role="teacher",
                        dataset="digits", dataset_fingerprint=data.fingerprint())
    a = distill("graphcut", "digits", 2, teacher=path, **FAST)
    b = distill("graphcut", "digits", 2, teacher=path, **{**FAST, "seed": 9})
    assert torch.equal(a.source_indices, b.source_indices)
    assert a.config["embedding_network"]["teacher"]["checksum"] == a.config["embedding_network"]["checksum"]
