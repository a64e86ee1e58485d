"""MTT/AST: exact constant-memory gradient, the objective goes down, α is learned and used, resume, bad input."""
import json
import os

import pytest
import torch

from condense.cli import main
from condense.experts import ExpertConfig, train_buffer
from condense.store import SynthSet
from condense.synth import distill, prepare
from condense.synth.trajectory import recompute_grads, unrolled_loss

# Depth 2 on 8×8 digits: at depth 3 the last instance norm sees 2×2 maps and the matching loss is
# too rough for a small test to show progress.
WIDTH = {"width": 8, "depth": 2}
FAST = ["--dataset", "digits", "--model-args", json.dumps(WIDTH), "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("mtt") / "experts")
    cfg = ExpertConfig.for_style("mtt", dataset="digits", model_args=WIDTH, epochs=4, lr=0.3, batch_size=256)
    train_buffer(cfg, folder, 2, torch.device("cpu"), log=lambda m: None)
    return folder


def ready(experts, ipc=2, **options):
    method = prepare("mtt", "digits", ipc, model_args=WIDTH, device="cpu", experts=experts,
                     **{"iterations": 1, "max_start_epoch": 2, "expert_epochs": 1, "lr_teacher": 0.1, **options})
    method.synth = method.init()
    return method


@pytest.mark.parametrize("student_momentum, ast", [(0.0, False), (0.9, False), (0.9, True)])
def test_recompute_gradient_equals_unrolled(experts, student_momentum, ast):
    # ast=True adds the intermediate target, weight perturbation, balanced loss and a minibatch.
    method = ready(experts, syn_steps=6, student_momentum=student_momentum, middle_loss=ast, weight_perturb=ast,
                   balance_loss=ast, batch_syn=8 if ast else 0, expert_epochs=2 if ast else 1)
    assert len(method.trajectory(3).targets) == (2 if ast else 1)
    tr = method.trajectory(3)
    images, alpha = method.synth.images, method.synth.lr
    loss = unrolled_loss(tr, images, alpha)
    g_images, g_alpha = torch.autograd.grad(loss, (images, alpha))
    r_loss, r_images, r_alpha = recompute_grads(tr, images, alpha)
    assert r_loss == pytest.approx(loss.item(), rel=1e-5)
    scale = g_images.abs().max()
    assert scale > 0 and (r_images - g_images).abs().max() <= 1e-5 * scale
    assert abs(float(r_alpha - g_alpha)) <= 1e-5 * abs(float(g_alpha))


def test_recompute_gradient_matches_finite_differences():
    """Exactness, not just agreement: float64, no DSA, central differences along the gradient."""
    from condense.models import create_model
    from condense.synth.trajectory import StudentStep, Trajectory
    from torch.func import functional_call

    from condense.models import ParamLayout

    torch.manual_seed(0)
    net = create_model("ConvNet", 1, 3, (8, 8), **WIDTH).double()
    layout = ParamLayout.of(net)
    start = layout.flatten(net)
    target = start + 0.05 * torch.randn_like(start)
    images = torch.randn(6, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    steps = [StudentStep(index=torch.randperm(6)[:4], augment=None) for _ in range(4)]
    tr = Trajectory(forward=lambda th, x: functional_call(net, layout.unflatten(th), (x,)),
                    labels=torch.arange(3).repeat(2), start=start, targets={4: (target, 1.0)}, steps=steps,
                    momentum=0.9)
    _, g_images, g_alpha = recompute_grads(tr, images, alpha)
    d, eps = g_images / g_images.norm(), 1e-5
    fd = (recompute_grads(tr, images + eps * d, alpha)[0] - recompute_grads(tr, images - eps * d, alpha)[0]) / (2 * eps)
    assert fd == pytest.approx(float(g_images.norm()), rel=1e-5)
    fd_alpha = (recompute_grads(tr, images, alpha + eps)[0] - recompute_grads(tr, images, alpha - eps)[0]) / (2 * eps)
    assert fd_alpha == pytest.approx(float(g_alpha), rel=1e-5)


def probe_loss(method, alpha, iterations=(1000, 1001, 1002, 1003, 1004, 1005)) -> float:
    """The matching loss on fixed draws (expert, start, batches, DSA) at a fixed α: a noise-free objective."""
    images = method.synth.images.detach()
    return sum(recompute_grads(method.trajectory(it), images, alpha)[0] for it in iterations) / len(iterations)


def test_mtt_objective_decreases_on_digits(experts):
    from condense.synth.driver import DriverOptions, run

    method = prepare("mtt", "digits", 2, model_args=WIDTH, device="cpu", experts=experts, iterations=20,
                     syn_steps=6, max_start_epoch=2, expert_epochs=1, lr_teacher=0.1, lr_img=10.0, lr_lr=1e-4)
    method.synth = method.init()
    alpha0 = torch.tensor(0.1)
    before = probe_loss(method, alpha0)
    losses = []
    run(method, 20, DriverOptions(quiet=True, on_step=lambda i, s: losses.append(s["loss"])))
    after = probe_loss(method, alpha0)  # same α: the images alone must have improved the match
    assert after < 0.8 * before, (before, after)
    assert sum(losses[-5:]) < sum(losses[:5])


def test_learned_alpha_is_stored_and_used_by_eval(experts, tmp_path, capsys):
    out, report = str(tmp_path / "mtt.h5"), str(tmp_path / "eval.json")
    code = main(["distill", "--method", "mtt", "--experts", experts, "--ipc", "2", "--iterations", "6",
                 "--syn-steps", "4", "--max-start-epoch", "2", "--expert-epochs", "1", "--set", "lr_lr=0.001",
                 "--out", out, *FAST])
    assert code == 0, capsys.readouterr().err
    synth = SynthSet.load(out)
    assert synth.lr is not None and float(synth.lr) != pytest.approx(0.01)  # α moved from α0
    assert synth.config["method_config"]["syn_steps"] == 4
    assert main(["eval", out, "--models", "ConvNet", "--epochs", "2", "--runs", "1", "--device", "cpu",
                 "--json", report]) == 0
    assert json.load(open(report))["lr"] == pytest.approx(float(synth.lr))


def test_ast_preset_turns_every_option_on_and_kmeans_picks_real_images(experts, tmp_path, capsys):
    out = str(tmp_path / "ast.h5")
    code = main(["distill", "--method", "mtt", "--preset", "ast", "--experts", experts, "--ipc", "2",
                 "--iterations", "2", "--syn-steps", "4", "--max-start-epoch", "2", "--expert-epochs", "2", "--out", out,
                 *FAST])
    assert code == 0, capsys.readouterr().err
    cfg = SynthSet.load(out).config["method_config"]
    assert (cfg["init"], cfg["balance_loss"], cfg["student_momentum"], cfg["middle_loss"], cfg["weight_perturb"]) \
        == ("kmeans", True, 0.9, True, True)
    method = ready(experts, init="kmeans")
    real = method.data.train_x.flatten(1)
    for img, label in zip(method.synth.images.detach(), method.synth.labels):
        match = (real == img.flatten()).all(1).nonzero().squeeze(1)
        assert len(match) >= 1 and int(method.data.train_y[match[0]]) == int(label)
    assert len({tuple(i.flatten().tolist()) for i in method.synth.images.detach()}) == len(method.synth.images)


def test_mtt_resume_is_bit_exact(experts, tmp_path):
    kwargs = dict(model_args=WIDTH, device="cpu", experts=experts, iterations=4, syn_steps=3, max_start_epoch=2,
                  expert_epochs=1, checkpoint_every=2)
    full = distill("mtt", "digits", 2, **kwargs)

    def interrupt(done, stats):
        if done == 2:
            raise KeyboardInterrupt

    out = str(tmp_path / "resumed.h5")
    with pytest.raises(KeyboardInterrupt):
        distill("mtt", "digits", 2, out=out, on_step=interrupt, **kwargs)
    resumed = distill("mtt", "digits", 2, out=out, resume=True, **kwargs)
    assert torch.equal(resumed.images, full.images) and torch.equal(resumed.lr, full.lr)


@pytest.mark.parametrize("case, needle", [
    ("missing", "does not exist"),
    ("empty", "holds no experts"),
    ("dataset", "trained for ConvNet {'depth': 2, 'width': 8} on digits, but this run asks for ConvNet "
                "{'depth': 2, 'width': 8} on mnist5k"),
    ("model", "but this run asks for ConvNet {'width': 16} on digits"),
    ("beyond", "max_start_epoch 4 + expert_epochs 2 reaches epoch 5, beyond the 4 epochs"),
    ("grad_mode", "Unknown grad_mode 'fast'"),
])
def test_bad_mtt_input_exits_2_with_one_sentence(experts, tmp_path, capsys, case, needle):
    os.makedirs(tmp_path / "empty")
    folder = {"missing": str(tmp_path / "nope"), "empty": str(tmp_path / "empty")}.get(case, experts)
    argv = ["distill", "--method", "mtt", "--experts", folder, "--ipc", "2", "--iterations", "1", "--device", "cpu",
            "--quiet", "--out", str(tmp_path / "x.h5"), "--max-start-epoch", "4" if case == "beyond" else "2"]
    argv += ["--dataset", "mnist5k" if case == "dataset" else "digits"]
    argv += ["--model-args", json.dumps({"width": 16} if case == "model" else WIDTH)]
    if case == "grad_mode":
        argv += ["--grad-mode", "fast"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err and needle in err, err


def test_flip_halves_the_minibatch_and_doubles_it_with_flips(experts, tmp_path):
    """FYI for mtt: rows per step halve, each step trains on [x; hflip(x)], the stored set is not doubled."""
    plain = ready(experts, syn_steps=4, batch_syn=10)
    flipped = ready(experts, syn_steps=4, batch_syn=10, flip=True)
    tr = flipped.trajectory(0)
    assert [len(s.index) for s in plain.trajectory(0).steps] == [10] * 4
    assert [len(s.index) for s in tr.steps] == [5] * 4 and tr.flip
    # digits' DSA has no flip family (digits are not mirror-symmetric), so there is none to put first
    assert not flipped.dsa.cfg.flip_first and "flip" not in flipped.dsa.cfg.strategy
    seen = {}
    forward = tr.forward
    tr.forward = lambda theta, x: (seen.setdefault("x", x), forward(theta, x))[1]
    tr.dsa = None  # look at the batch before augmentation
    tr.inner_loss(tr.start, flipped.synth.images, 0)
    rows = flipped.synth.images[tr.steps[0].index]
    assert torch.equal(seen["x"], torch.cat([rows, rows.flip(-1)]))
    # the exact gradient holds with the doubled batches, and the saved set keeps IPC images per class
    tr = flipped.trajectory(1)
    images, alpha = flipped.synth.images, flipped.synth.lr
    g_images, _ = torch.autograd.grad(unrolled_loss(tr, images, alpha), (images, alpha))
    _, r_images, _ = recompute_grads(tr, images, alpha)
    assert (r_images - g_images).abs().max() <= 1e-5 * g_images.abs().max()
    out = distill("mtt", "digits", 2, model_args=WIDTH, device="cpu", experts=experts, iterations=2, syn_steps=2,
                  max_start_epoch=2, expert_epochs=1, flip=True, out=str(tmp_path / "f.h5"))
    assert out.images.shape[0] == 20 and SynthSet.load(str(tmp_path / "f.h5")).config["method_config"]["flip"]
