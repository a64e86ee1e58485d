"""KIP and RKIP (condense.synth.kip) and kernel-regression evaluation (condense.evaluation.kernel_eval)."""
import pytest
import torch

from condense.errors import CondenseError
from condense.evaluation.kernel_eval import evaluate_kernel, kernel_accuracy
from condense.kernels import RKIP_RIDGE, ReluNet, centred_one_hot, krr_coefficients, relu_ntk
from condense.store import SynthSet
from condense.synth import distill, prepare

CPU = {"device": "cpu"}


@pytest.mark.parametrize("method,init", [("kip", "real"), ("kip", "noise"), ("rkip", "real"), ("rkip", "noise")])
def test_objective_decreases(method, init):
    """On the whole real training split (deterministic), the loss at the end is below the loss at the start."""
    m = prepare(method, "digits", 2, iterations=40, init=init, **CPU)
    m.synth = m.init()
    before = m.objective(*m._real(0)).item()
    for it in range(40):
        m.step(it)
    after = m.objective(*m._real(0)).item()
    assert after < (0.9 if method == "kip" else 0.995) * before, (before, after)


def test_rkip_loss_is_the_rkhs_distance_between_the_two_kernel_machines():
    """½‖f_s − f_t‖²_H with f = Σ α_j Θ(x_j, ·): the same number from the stacked Gram matrix."""
    m = prepare("rkip", "digits", 1, iterations=1, target_batch=50, **CPU)
    m.synth = m.init()
    x_t, y_t, alpha_t, const = m._real(0)
    loss = m.objective(x_t, y_t, alpha_t, const).item()
    x_s = m.synth.images.detach()
    alpha_s = krr_coefficients(relu_ntk(x_s, None, m.kernel), m.support_targets().detach(), RKIP_RIDGE)
    both = torch.cat([x_s, x_t])
    coef = torch.cat([alpha_s, -alpha_t])
    direct = 0.5 * (coef * (relu_ntk(both, None, m.kernel) @ coef)).sum().item()
    assert loss == pytest.approx(direct, rel=1e-6)


def test_labels_are_learned_or_kept():
    learned = distill("kip", "digits", 1, iterations=3, **CPU)
    assert learned.label_kind == "logits" and learned.labels.shape == (10, 10)
    assert not torch.allclose(learned.labels, centred_one_hot(torch.arange(10), 10).float())
    assert torch.equal(learned.hard_labels, torch.arange(10))
    fixed = distill("rkip", "digits", 1, iterations=3, learn_labels=False, **CPU)
    assert fixed.label_kind == "hard" and torch.equal(fixed.labels, torch.arange(10))


def test_resume_is_bit_exact(tmp_path):
    opts = {"iterations": 6, "checkpoint_every": 1, "target_batch": 64, **CPU}
    straight = distill("rkip", "digits", 1, **opts)
    out = str(tmp_path / "r.h5")

    def stop(done, _stats):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill("rkip", "digits", 1, out=out, on_step=stop, **opts)
    resumed = distill("rkip", "digits", 1, out=out, resume=True, **opts)
    assert torch.equal(straight.images, resumed.images) and torch.equal(straight.labels, resumed.labels)


def test_min_distance_defence_holds():
    synth = distill("rkip", "digits", 1, iterations=5, min_distance=1.0, **CPU)
    data = prepare("random", "digits", 1, **CPU).ctx.dataset
    x01 = synth.denormalized().flatten(1)
    real = data.denormalize(data.train_x).flatten(1)
    assert float(torch.cdist(x01, real).min()) >= 1.0 - 1e-4


def test_kernel_regression_accuracy_of_a_learned_support_set(tmp_path):
    """KRR with 20 KIP images as support beats chance by far; the CLI's report carries the set's own kernel."""
    synth = distill("kip", "digits", 2, iterations=30, **CPU)
    data = prepare("random", "digits", 1, **CPU).ctx.dataset
    assert kernel_accuracy(synth, data.test_x, data.test_y) > 50.0
    path = synth.save(str(tmp_path / "kip.h5"))
    report = evaluate_kernel([path], "nngp")
    assert report.rows[0]["method"] == "kip" and report.rows[0]["accuracy"] > 30.0
    assert "depth 2" in report.markdown() and report.to_json()["kind"] == "kernel_regression"


def test_bad_input_is_one_sentence(tmp_path):
    with pytest.raises(CondenseError, match="option 'depth' must be an integer ≥ 1"):
        distill("kip", "digits", 1, iterations=1, depth=0, **CPU)
    with pytest.raises(CondenseError, match="Unknown init"):
        distill("kip", "digits", 1, iterations=1, init="kmeans", **CPU)
    regression = SynthSet(images=torch.zeros(2, 1, 8, 8), labels=torch.zeros(2, 4), dataset="digits", num_classes=10,
                          class_names=[str(c) for c in range(10)], mean=(0.3,), std=(0.4,), method="krr_st",
                          label_kind="regression")
    with pytest.raises(CondenseError, match="--transfer"):
        evaluate_kernel([regression.save(str(tmp_path / "k.h5"))])
    with pytest.raises(CondenseError, match="depth"):
        ReluNet(depth=-1).check()
