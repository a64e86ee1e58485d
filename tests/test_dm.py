import pytest
import torch

from condense.evaluation import Protocol, evaluate
from condense.synth import distill, prepare
from condense.synth.matching import class_means

TINY = {"model_args": {"width": 16}, "device": "cpu"}


def test_class_means_matches_a_loop():
    x, y = torch.randn(10, 3), torch.tensor([0, 1, 1, 2, 0, 2, 2, 1, 0, 0])
    means = class_means(x, y, 4)
    for c in range(3):
        assert torch.allclose(means[c], x[y == c].mean(0))
    assert torch.equal(means[3], torch.zeros(3))  # empty class: zeros, not NaN


def test_batched_loss_equals_per_class_loss():
    """One forward over all classes (our speed edge) gives the official per-class loss and gradient."""
    method = prepare("dm", "digits", 2, **TINY)
    method.init()
    net = method.ctx.new_model().requires_grad_(False)
    gen = torch.Generator().manual_seed(3)
    real_x, real_y = method.ctx.sampler.sample_classes(16, gen)
    syn = method.synth.images
    k = method.ctx.dataset.num_classes
    batched = ((class_means(net.embed(real_x), real_y, k) - class_means(net.embed(syn), method.synth.labels, k)) ** 2).sum()
    g_batched, = torch.autograd.grad(batched, syn)
    looped = sum(((net.embed(real_x[real_y == c]).mean(0) - net.embed(syn[method.synth.labels == c]).mean(0)) ** 2).sum()
                 for c in range(k))
    g_looped, = torch.autograd.grad(looped, syn)
    assert torch.allclose(batched, looped, rtol=1e-5)
    assert torch.allclose(g_batched, g_looped, rtol=1e-4, atol=1e-7)


def dm_objective(synth, dataset, probes=4):
    """The DM loss on all real training images, averaged over fixed probe networks, no augmentation."""
    from condense.models import create_model

    real_x, real_y = dataset.train_x, dataset.train_y
    total = 0.0
    for probe in range(probes):
        torch.manual_seed(1000 + probe)
        net = create_model("ConvNet", 1, dataset.num_classes, dataset.image_shape[1:], width=16).requires_grad_(False)
        k = dataset.num_classes
        total += ((class_means(net.embed(real_x), real_y, k) - class_means(net.embed(synth.images), synth.labels, k)) ** 2).sum().item()
    return total / probes


@pytest.mark.parametrize("init", ["noise", "real"])
def test_dm_objective_decreases(init):
    """Measured on fixed probe networks (the per-iteration loss uses a fresh network each time)."""
    # 8x8 digits leave a depth-3 ConvNet a 1x1 map with little to match, so use 28px MNIST, tiny.
    small = {**TINY, "max_per_class": 30, "batch_real": 16, "init": init, "iterations": 30}
    method = prepare("dm", "mnist5k", 3, **small)
    start = method.init().detached()
    end = distill("dm", "mnist5k", 3, **small)
    before, after = dm_objective(start, method.ctx.dataset), dm_objective(end, method.ctx.dataset)
    assert after < 0.7 * before, (before, after)


def test_only_pixels_change_and_labels_stay():
    start = prepare("dm", "digits", 2, **TINY).init()  # the images the run starts from
    after = distill("dm", "digits", 2, iterations=5, **TINY)
    assert torch.equal(start.labels, after.labels)
    assert not torch.equal(start.images, after.images)
    assert after.iterations_done == 5 and after.method == "dm"


def test_distilled_set_beats_random_subset():
    """DM at IPC 1 on digits, fixed protocol and seeds: better than a random real subset of equal size."""
    protocol = Protocol(name="test", epochs=60, checkpoints=1)
    kwargs = {"runs": 3, "protocol": protocol, "device": "cpu"}
    rnd = evaluate(distill("random", "digits", 1, device="cpu"), **kwargs).results["ConvNet"]
    dm = evaluate(distill("dm", "digits", 1, iterations=120, **{"device": "cpu"}), **kwargs).results["ConvNet"]
    assert dm.mean > rnd.mean + 2.0, (dm, rnd)
