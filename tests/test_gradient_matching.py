import pytest
import torch
import torch.nn.functional as F

from condense.errors import CondenseError
from condense.models import create_model
from condense.synth import distill, prepare
from condense.synth.base import build_config
from condense.synth.gradient_matching import fix_batchnorm_statistics, layer_distance, match_distance

DIGITS = {"model_args": {"width": 16, "depth": 2}, "device": "cpu"}


def test_distance_is_zero_for_identical_gradients_and_ignores_1d_params():
    g = [torch.randn(8, 3, 3, 3), torch.randn(8), torch.randn(10, 32), torch.randn(10)]
    assert match_distance(g, [t.clone() for t in g]).item() == pytest.approx(0.0, abs=1e-5)
    # positive rescaling of a row does not change a cosine either
    assert match_distance(g, [t * 3.0 for t in g]).item() == pytest.approx(0.0, abs=1e-5)
    changed_1d = [g[0], torch.randn(8), g[2], torch.randn(10)]
    assert match_distance(g, changed_1d).item() == pytest.approx(0.0, abs=1e-5)
    assert layer_distance(torch.randn(8), torch.randn(8)).item() == 0.0


def test_distance_is_per_output_row():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 1.0]])  # orthogonal, opposite, same rows
    assert layer_distance(a, b).item() == pytest.approx(1.0 + 2.0 + 0.0, abs=1e-5)
    # a global cosine would mix the rows into one number
    assert match_distance([a], [b], "cos").item() != pytest.approx(3.0)
    assert match_distance([a], [b], "mse").item() == pytest.approx(((a - b) ** 2).sum().item())


def test_vmapped_class_gradients_equal_the_per_class_loop():
    """All classes' synthetic gradients in one vmap(grad) call = K autograd.grad calls, incl. d/d(images)."""
    method = prepare("dc", "digits", 2, **DIGITS)
    method.init()
    net = method.ctx.new_model()
    x, y = method.synth.images, method.synth.labels
    batched = list(method.class_gradients(net)(x.view(10, 2, *x.shape[1:]), y.view(10, 2)).values())
    params = list(net.parameters())
    target = [torch.randn_like(p) for p in params]
    loss_b = sum(match_distance([g[c] for g in batched], target) for c in range(10))
    loss_l = 0
    for c in range(10):
        gc = torch.autograd.grad(F.cross_entropy(net(x[y == c]), y[y == c]), params, create_graph=True)
        for a, b in zip(batched, gc):
            assert torch.allclose(a[c], b, atol=1e-6)
        loss_l = loss_l + match_distance(list(gc), target)
    d_b, = torch.autograd.grad(loss_b, x)
    d_l, = torch.autograd.grad(loss_l, x)
    assert torch.allclose(d_b, d_l, rtol=1e-3, atol=1e-5)


def test_loop_table_is_preset_data():
    for ipc, loops in [(1, (1, 1)), (10, (10, 50)), (20, (20, 25)), (50, (50, 10)), (15, (10, 50))]:
        cfg = build_config("dsa", "mnist5k", ipc, {})
        assert (cfg.outer_loop, cfg.inner_loop) == loops, ipc
    assert build_config("dc", "mnist5k", 10, {"inner_loop": 3}).inner_loop == 3  # user wins


def test_batchnorm_statistics_come_from_real_images():
    net = create_model("ConvNetBN", 1, 10, (8, 8), width=8, depth=2)
    bn = net.blocks[0].norm
    real = torch.randn(32, 1, 8, 8) * 3 + 2
    fix_batchnorm_statistics(net, real)
    assert not bn.training and float(bn.running_mean.abs().sum()) > 0
    frozen_mean = bn.running_mean.clone()
    net(torch.randn(4, 1, 8, 8))  # matching forwards must not move them
    assert torch.equal(bn.running_mean, frozen_mean)
    out = distill("dsa", "digits", 2, model="ConvNetBN", iterations=2, **DIGITS)
    assert torch.isfinite(out.images).all()


def dc_objective(synth, dataset, probes=3):
    """DC distance between all real images and the set, per class, on fixed probe networks, no augmentation."""
    total = 0.0
    for probe in range(probes):
        torch.manual_seed(3000 + probe)
        net = create_model("ConvNet", 1, 10, (8, 8), width=16, depth=2)
        params = list(net.parameters())
        for c in range(10):
            xr, xs = dataset.train_x[dataset.train_y == c], synth.images[synth.labels == c]
            gr = torch.autograd.grad(F.cross_entropy(net(xr), torch.full((len(xr),), c)), params)
            gs = torch.autograd.grad(F.cross_entropy(net(xs), torch.full((len(xs),), c)), params)
            total += match_distance(gs, gr).item()
    return total / probes


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_gradient_matching_objective_decreases(method):
    """Measured on fixed probe networks (the per-iteration loss uses fresh networks and augmentation)."""
    small = {**DIGITS, "max_per_class": 40, "batch_real": 32, "iterations": 25, "init": "real"}
    m = prepare(method, "digits", 3, **small)
    start = m.init().detached()
    end = distill(method, "digits", 3, **small)
    before, after = dc_objective(start, m.ctx.dataset), dc_objective(end, m.ctx.dataset)
    assert after < 0.8 * before, (before, after)
    assert torch.equal(start.labels, end.labels)


def test_resume_is_bit_exact_with_an_inner_loop(tmp_path):
    """Interrupted after iteration 1 and resumed: the same images as an uninterrupted run (the inner
    loop's shuffles and augmentation draws come from the iteration seed)."""
    from condense.synth.driver import DriverOptions, run

    opts = {**DIGITS, "iterations": 2, "outer_loop": 2, "inner_loop": 2, "batch_real": 8, "flip": True}
    whole = distill("dsa", "digits", 2, **opts)
    out = str(tmp_path / "s.h5")

    def stop_after_one(done, stats):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(prepare("dsa", "digits", 2, **opts), 2, DriverOptions(out=out, checkpoint_every=1, quiet=True,
                                                                   on_step=stop_after_one))
    resumed = distill("dsa", "digits", 2, out=out, resume=True, **opts)
    assert torch.equal(whole.images, resumed.images)


# ---- FYI flip plug-in ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["dc", "dsa", "dm", "datadam"])
def test_flip_doubles_the_synthetic_batch_and_stores_the_set_unchanged(method):
    ipc, k = 2, 10
    m = prepare(method, "digits", ipc, iterations=1, flip=True, batch_real=8, **DIGITS)
    m.synth = m.init()
    stored = m.synth.images.detach().clone()
    x, y = m.synthetic_batch()
    assert x.shape[0] == 2 * k * ipc and torch.equal(x[k * ipc:], stored.flip(-1)) and torch.equal(y[k * ipc:], y[:k * ipc])
    seen = []  # synthetic images reaching the network (those that carry a gradient back to the pixels)
    if method in ("dc", "dsa"):
        inner = m.class_gradients

        def spy(net):
            fn = inner(net)
            return lambda xs, ys: (seen.append(xs.shape[0] * xs.shape[1]), fn(xs, ys))[1]
        m.class_gradients = spy
    else:
        new_model = m.ctx.new_model

        def spying_model(*a, **kw):
            net = new_model(*a, **kw)
            conv = next(mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d))
            conv.register_forward_pre_hook(lambda mod, inp: seen.append(len(inp[0])) if inp[0].requires_grad else None)
            return net
        m.ctx.new_model = spying_model
    m.step(0)
    assert seen == [2 * k * ipc]
    out = distill(method, "digits", ipc, iterations=2, flip=True, batch_real=8, **DIGITS)
    assert out.images.shape[0] == k * ipc and out.config["method_config"]["flip"] is True


def test_flip_on_an_unsupported_method_is_one_sentence():
    with pytest.raises(CondenseError, match="--flip is not supported by method 'herding'"):
        prepare("herding", "digits", 1, flip=True, device="cpu")
