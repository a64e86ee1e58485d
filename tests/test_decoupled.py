"""The decoupled family on digits with two tiny ConvNetBN teachers: SRe2L recovery, RDED selection, INFER
compensators. Each objective goes down, resume is bit-exact, the stored set holds what the method says (and
storage counts it), labels come from the teachers, and teachers a method cannot use are refused."""
import os

import pytest
import torch
import torch.nn.functional as F

from condense.data import load_dataset
from condense.errors import CondenseError
from condense.models import create_model, save_network
from condense.store import SynthSet
from condense.synth import distill, prepare
from condense.synth.infer import base_images
from condense.synth.rded import stitch
from condense.synth.recover import BNStatistics, recovery_loss
from condense.teachers import Ensemble, load_teachers, reference_of, static_logits

DIGITS = load_dataset("digits", device="cpu")
CPU = {"device": "cpu"}


def teachers_of(folder, count=2):
    return load_teachers(folder, dataset="digits", fingerprint=DIGITS.fingerprint(), num_classes=10,
                         image_shape=(1, 8, 8), device=torch.device("cpu"), count=count)


def recovery_objective(net, images, labels, groups, r_bn):
    """CE + r_bn · BN loss per batch of one image per class, without the random roll, summed over batches."""
    bn = BNStatistics(net, 10.0)
    with torch.no_grad():
        logits, stats = bn(images, groups)
        ce = F.cross_entropy(logits, labels, reduction="none").view(groups, -1).mean(1)
    return float((ce + r_bn * stats).sum())


def interrupted(method, out, stop_at, **options):
    def stop(it, stats):
        if it == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(method, "digits", 2, out=out, checkpoint_every=1, on_step=stop, **options)
    return distill(method, "digits", 2, out=out, resume=True, checkpoint_every=1, **options)


# ---- the recovery objective --------------------------------------------------------------------
def official_recovery_loss(net, x, y, r_bn, first):
    """SRe2L's per-batch loss as ``recover_cifar.py`` computes it (``BNFeatureHook``): CE (mean) + r_bn · Σ_l w_l
    (‖running_var − var‖₂ + ‖running_mean − mean‖₂), biased variance over (N, H, W), the first layer × first."""
    terms = []

    def hook(module, inputs, output):
        a = inputs[0]
        var = a.permute(1, 0, 2, 3).reshape(a.shape[1], -1).var(1, unbiased=False)
        terms.append(torch.norm(module.running_var - var, 2) + torch.norm(module.running_mean - a.mean([0, 2, 3]), 2))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    logits = net(x)
    for h in handles:
        h.remove()
    return F.cross_entropy(logits, y) + r_bn * sum(t * (first if i == 0 else 1.0) for i, t in enumerate(terms))


def test_grouped_recovery_gives_every_batch_the_official_gradient():
    """Batches recovered in one forward (one slice each) get exactly the gradient of separate official runs."""
    torch.manual_seed(0)
    net = create_model("ConvNetBN", 1, 10, (8, 8), width=8)
    with torch.no_grad():  # non-trivial running statistics
        net.train()
        for _ in range(3):
            net(torch.randn(32, 1, 8, 8) * 2 + 0.5)
    net.eval().requires_grad_(False)
    x = torch.randn(30, 1, 8, 8, requires_grad=True)
    y = torch.arange(10).repeat(3)
    loss = recovery_loss(BNStatistics(net, 10.0), x, y, 3, 0.01)[0]
    grad = torch.autograd.grad(loss, x)[0]
    for g in range(3):
        part = x[g * 10:(g + 1) * 10].detach().clone().requires_grad_(True)
        want = torch.autograd.grad(official_recovery_loss(net, part, y[:10], 0.01, 10.0), part)[0]
        assert torch.allclose(grad[g * 10:(g + 1) * 10], want, rtol=1e-4, atol=1e-9)


# ---- SRe2L ------------------------------------------------------------------------------------
def test_sre2l_recovery_objective_decreases_and_labels_come_from_the_teacher(digits_teachers):
    opts = {"teacher": digits_teachers, "iterations": 40, **CPU}
    method = prepare("sre2l", "digits", 2, **opts)
    start = method.init().detached()
    end = distill("sre2l", "digits", 2, **opts)
    net = teachers_of(digits_teachers, 1)[0].net
    order = torch.arange(20).view(10, 2).t().reshape(-1)  # batch-major: one image per class per batch
    before = recovery_objective(net, start.images[order], start.labels[order], 2, 0.01)
    after = recovery_objective(net, end.images[order], end.labels[order], 2, 0.01)
    assert after < 0.5 * before, (before, after)
    low, high = (0 - DIGITS.mean[0]) / DIGITS.std[0], (1 - DIGITS.mean[0]) / DIGITS.std[0]
    assert end.images.min() >= low - 1e-5 and end.images.max() <= high + 1e-5  # clamped to [0, 1] pixels
    assert end.label_kind == "logits" and end.labels.shape == (20, 10)
    assert torch.allclose(end.labels, static_logits(net, end.images), atol=1e-5)
    assert end.config["teachers"]["checksum"] == reference_of(teachers_of(digits_teachers, 1))["checksum"]
    assert (end.labels.argmax(1) == torch.arange(10).repeat_interleave(2)).float().mean() > 0.9


def test_sre2l_resume_is_bit_exact_and_relabel_names_the_teacher(digits_teachers, tmp_path):
    opts = {"teacher": digits_teachers, "iterations": 5, "labels": "relabel", **CPU}
    straight = distill("sre2l", "digits", 2, **opts)
    resumed = interrupted("sre2l", str(tmp_path / "s.h5"), 3, **opts)
    assert torch.equal(resumed.images, straight.images)
    saved = SynthSet.load(str(tmp_path / "s.h5"))
    assert saved.label_kind == "relabel" and saved.labels.dtype == torch.int64
    assert saved.relabel_network["checksum"] == reference_of(teachers_of(digits_teachers, 1))["checksum"]
    assert saved.storage_bytes()["labels"] == 20 * 8  # hard labels only: the teacher's weights are not stored


# ---- RDED -------------------------------------------------------------------------------------
def test_rded_keeps_crops_the_observer_finds_more_realistic_than_random_ones(digits_teachers):
    rded = distill("rded", "digits", 3, teacher=digits_teachers, **CPU)
    rnd = distill("random", "digits", 3, **CPU)
    observer = teachers_of(digits_teachers, 1)[0].net
    ce = [float(F.cross_entropy(static_logits(observer, s.images), s.hard_labels)) for s in (rded, rnd)]
    assert ce[0] < ce[1], ce  # the selection objective: lower CE on the class than real images drawn at random
    assert rded.images.shape == (30, 1, 8, 8) and rded.label_kind == "relabel"
    assert rded.relabel_network["checksum"] == teachers_of(digits_teachers, 1)[0].info.checksum
    assert rded.source_indices is None  # crops, not rows of the training split


def test_rded_stitches_f_squared_crops_per_image_row_major():
    patches = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 2, 2).clone()
    out = stitch(patches, images=2, f=2, size=(4, 4))  # patch k·2 + i -> image i, cell k
    assert out[0, 0, ::2, ::2].tolist() == [[0.0, 2.0], [4.0, 6.0]]
    assert out[1, 0, ::2, ::2].tolist() == [[1.0, 3.0], [5.0, 7.0]]
    odd = stitch(torch.ones(9, 1, 2, 2), images=1, f=3, size=(8, 8))  # 8 = 3 + 3 + 2: every pixel covered
    assert bool((odd == 1).all())


def test_rded_with_factor_2_and_static_labels(digits_teachers):
    s = distill("rded", "digits", 2, teacher=digits_teachers, factor=2, labels="logits", num_teachers=2, **CPU)
    assert s.images.shape == (20, 1, 8, 8) and s.label_kind == "logits"
    ensemble = Ensemble([t.net for t in teachers_of(digits_teachers)])
    assert torch.allclose(s.labels, static_logits(ensemble, s.images), atol=1e-5)


# ---- INFER ------------------------------------------------------------------------------------
def test_infer_stores_the_budgeted_naturals_and_one_compensator_per_batch_and_teacher(digits_teachers, tmp_path):
    ipc, k, m = 5, 10, 2
    n = base_images(ipc, m, k)
    assert n == int(5 / 1.2) == 4
    out = str(tmp_path / "i.h5")
    s = distill("infer", "digits", ipc, teacher=digits_teachers, iterations=10, out=out, **CPU)
    assert SynthSet.load(out).decoder == {"kind": "compensators"}
    u = s.decoder_arrays["compensators"]
    assert s.images.shape == (n * k, 1, 8, 8) and u.shape == (n, m, 1, 8, 8) and s.ipc == n
    assert torch.equal(s.images, DIGITS.train_x[s.source_indices])  # the naturals are real images, kept as they are
    assert s.labels.shape == (n * k, k) and s.decoder_arrays["labels"].shape == (n * m * k, k)
    images, labels = s.decode()
    assert images.shape[0] == labels.shape[0] == n * k * (m + 1)
    low, high = (0 - DIGITS.mean[0]) / DIGITS.std[0], (1 - DIGITS.mean[0]) / DIGITS.std[0]
    want = (s.images[2 * k:3 * k] + u[2, 1]).clamp(low, high)  # base batch 2, teacher 1
    assert torch.allclose(images[n * k + n * k + 2 * k: n * k + n * k + 3 * k], want)
    ensemble = Ensemble([t.net for t in teachers_of(digits_teachers)])
    assert torch.allclose(labels, static_logits(ensemble, images), atol=1e-5)  # static: on un-augmented images
    sizes = s.storage_bytes()
    assert sizes["images"] == n * k * 64 * 4 and sizes["decoder"] == n * m * 64 * 4
    assert sizes["labels"] == n * k * (m + 1) * k * 4  # every decoded image's soft label counts
    assert sizes["images"] + sizes["decoder"] <= ipc * k * 64 * 4  # the budget: at most IPC images per class


def test_infer_objective_decreases_and_resume_is_bit_exact(digits_teachers, tmp_path):
    opts = {"teacher": digits_teachers, "iterations": 30, **CPU}
    losses = []
    distill("infer", "digits", 5, on_step=lambda it, st: losses.append(st["ce"] + st["bn"]), **opts)
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5]), losses
    short = {**opts, "iterations": 5}
    straight = distill("infer", "digits", 2, **short)
    resumed = interrupted("infer", str(tmp_path / "r.h5"), 3, **short)
    assert torch.equal(resumed.decoder_arrays["compensators"], straight.decoder_arrays["compensators"])
    assert torch.equal(resumed.labels, straight.labels)


def test_infer_dyn_names_the_ensemble_and_stores_hard_labels(digits_teachers):
    s = distill("infer_dyn", "digits", 5, teacher=digits_teachers, iterations=2, **CPU)
    assert s.label_kind == "relabel" and "labels" not in s.decoder_arrays
    assert s.relabel_network["checksum"] == reference_of(teachers_of(digits_teachers))["checksum"]
    images, labels = s.decode()
    assert labels.tolist() == s.labels.tolist() * 3  # hard labels repeat over the compensated copies


def test_infer_refuses_an_ipc_that_leaves_no_natural_image(digits_teachers):
    with pytest.raises(CondenseError, match="leaves no natural image"):
        distill("infer", "digits", 1, teacher=digits_teachers, iterations=1, **CPU)


# ---- teachers a method cannot use ---------------------------------------------------------------
def test_methods_that_read_batchnorm_refuse_teachers_without_it(tmp_path):
    torch.manual_seed(0)
    net = create_model("ConvNet", 1, 10, (8, 8), width=8)
    path = save_network(str(tmp_path / "in.h5"), net, architecture="ConvNet", model_args={"width": 8}, channels=1,
                        num_classes=10, image_size=(8, 8), role="teacher", dataset="digits",
                        dataset_fingerprint=DIGITS.fingerprint())
    for method in ("sre2l", "infer", "infer_dyn"):
        with pytest.raises(CondenseError, match=f"{method} matches the teacher's BatchNorm statistics"):
            distill(method, "digits", 2, teacher=path, num_teachers=1, iterations=1, **CPU)
    assert distill("rded", "digits", 2, teacher=path, **CPU).images.shape == (20, 1, 8, 8)  # any observer
    with pytest.raises(CondenseError, match="Unknown labels 'soft' for rded"):
        distill("rded", "digits", 2, teacher=path, labels="soft", **CPU)
    assert os.listdir(tmp_path) == ["in.h5"]
