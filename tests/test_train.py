"""condense.train: the one training loop (fit), its recipe, targets and helpers."""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from condense.augment import dsa_for
from condense.data import load_dataset
from condense.models import create_model
from condense.train import Labels, TrainRecipe, checkpoint_epochs, fit, vmap_blocker
from condense.train import test_accuracy as accuracy_of  # a test_* name would be collected by pytest

FAST = dict(batch_size=20, lr=0.1, momentum=0.9)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", max_per_class=20)  # 200 training images, 20 per class; 355 test images


def convnet(seed: int, name: str = "ConvNet") -> nn.Module:
    # depth 2: a depth-3 ConvNet of width 8 on 8×8 images stays near chance for the few epochs used here
    torch.manual_seed(seed)
    return create_model(name, 1, 10, (8, 8), width=8, depth=2)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def run_losses(models, gens, x, labels, recipe, **kw):
    losses = []
    out = fit(models, gens, x, labels, recipe, on_epoch=lambda e, l: losses.append((e, l)), **kw)
    return out, losses


# ---- the loop ---------------------------------------------------------------------------------
def test_loss_decreases_and_test_accuracy_rises(digits):
    recipe = TrainRecipe(epochs=6, checkpoints=3, **FAST)
    net = convnet(0)
    before = accuracy_of(net, digits.test_x, digits.test_y)
    (res,), losses = run_losses([net], [gen(0)], digits.train_x, Labels(digits.train_y), recipe,
                                test=(digits.test_x, digits.test_y))
    assert [e for e, _ in losses] == [1, 2, 3, 4, 5, 6]
    assert losses[-1][1] < 0.4 * losses[0][1] and losses[-1][1] < 1.0
    assert [e for e, _ in res["curve"]] == sorted(checkpoint_epochs(6, 3)) == [2, 4, 6]
    assert res["final"] == res["curve"][-1][1] > max(0.5, before + 0.3)
    assert res["best"] == max(a for _, a in res["curve"])
    assert res["loss_curve"] == [(e, l) for e, l in losses if e in (2, 4, 6)]
    assert res["vectorised"] is False
    assert res["final"] == accuracy_of(net, digits.test_x, digits.test_y)  # one network: trained in place


def test_without_a_test_set_there_is_no_curve(digits):
    (res,) = fit([convnet(0)], [gen(0)], digits.train_x[:40], Labels(digits.train_y[:40]),
                 TrainRecipe(epochs=1, checkpoints=3, **FAST))
    assert res["final"] is None and res["best"] is None and res["curve"] == [] and res["loss_curve"] == []


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "dsa+mixup"])
def test_vectorised_training_matches_training_each_network_alone(digits, augment):
    recipe = TrainRecipe(epochs=4, checkpoints=2, mixup=0.5 if augment else 0.0, **FAST)
    dsa = dsa_for(hflip_safe=False) if augment else None
    nets, seeds = [convnet(s) for s in (1, 2, 3)], [11, 12, 13]
    test = (digits.test_x, digits.test_y)
    labels = Labels(digits.train_y)
    stacked = [copy.deepcopy(m) for m in nets]
    together, vec_losses = run_losses(stacked, [gen(s) for s in seeds], digits.train_x,
                                      labels, recipe, dsa=dsa, test=test, vectorised=True)
    alone = [run_losses([copy.deepcopy(m)], [gen(s)], digits.train_x, labels, recipe, dsa=dsa, test=test)
             for m, s in zip(nets, seeds)]
    assert all(r["vectorised"] for r in together) and not any(r[0][0]["vectorised"] for r in alone)
    for v, ((a,), _) in zip(together, alone):
        assert [e for e, _ in v["curve"]] == [e for e, _ in a["curve"]] == [2, 4]
        for (_, acc_v), (_, acc_a) in zip(v["curve"], a["curve"]):
            assert abs(acc_v - acc_a) <= 0.01
    for net, v in zip(stacked, together):  # the stacked copies' weights are written back into the networks
        assert accuracy_of(net, *test) == v["final"]
    assert len({losses[-1][1] for _, losses in alone}) == 3  # three different trajectories were compared
    # the vectorised run reports the mean loss over its networks, epoch by epoch
    for epoch in range(4):
        mean_alone = sum(losses[epoch][1] for _, losses in alone) / 3
        assert vec_losses[epoch][0] == epoch + 1
        assert math.isclose(vec_losses[epoch][1], mean_alone, rel_tol=1e-3)
    assert all(losses[-1][1] < 0.8 * losses[0][1] for _, losses in alone)  # and they did train


# ---- the recipe -------------------------------------------------------------------------------
def test_lr_at_by_hand():
    step = TrainRecipe(epochs=10, lr=0.5, schedule="step")  # default: decay after epochs // 2 = 5
    assert [step.lr_at(e) for e in range(1, 11)] == [0.5] * 5 + [0.5 * 0.1] * 5
    odd = TrainRecipe(epochs=7, lr=1.0, schedule="step", decay_factor=0.2)  # 7 // 2 = 3
    assert [odd.lr_at(e) for e in range(1, 8)] == [1.0] * 3 + [0.2] * 4
    explicit = TrainRecipe(epochs=10, lr=0.5, schedule="step", decay_after=8, decay_factor=0.5)
    assert [explicit.lr_at(e) for e in range(1, 11)] == [0.5] * 8 + [0.25] * 2
    cosine = TrainRecipe(epochs=4, lr=2.0, schedule="cosine")
    expected = [2.0, 1.0 + math.sqrt(0.5), 1.0, 1.0 - math.sqrt(0.5)]  # lr/2 (1 + cos(pi (e-1) / 4))
    assert all(math.isclose(cosine.lr_at(e), v, abs_tol=1e-12) for e, v in zip(range(1, 5), expected))
    assert cosine.lr_at(1) == 2.0 and all(cosine.lr_at(e) > cosine.lr_at(e + 1) > 0 for e in range(1, 4))
    constant = TrainRecipe(epochs=5, lr=0.3)
    assert constant.schedule == "constant" and {constant.lr_at(e) for e in range(1, 6)} == {0.3}


def test_fit_applies_the_schedule_each_epoch(digits):
    # step to lr 0 after epoch 2: epochs 3-4 must not move the network (plain SGD, no weight decay)
    x, labels = digits.train_x[:60], Labels(digits.train_y[:60])
    frozen = convnet(0)
    fit([frozen], [gen(0)], x, labels, TrainRecipe(epochs=4, batch_size=20, lr=0.1, schedule="step",
                                                   decay_factor=0.0))
    two = convnet(0)
    fit([two], [gen(0)], x, labels, TrainRecipe(epochs=2, batch_size=20, lr=0.1))
    assert torch.equal(flat(frozen), flat(two)) and not torch.equal(flat(two), flat(convnet(0)))


def test_fresh_optimizer_at_decay_resets_momentum(digits):
    x, labels = digits.train_x[:60], Labels(digits.train_y[:60])
    base = dict(batch_size=20, lr=0.05, momentum=0.9)
    recipe = TrainRecipe(epochs=4, schedule="step", decay_after=2, decay_factor=0.5, **base)
    fresh = convnet(0)
    fit([fresh], [gen(5)], x, labels, TrainRecipe(**{**recipe.__dict__, "fresh_optimizer_at_decay": True}))
    kept = convnet(0)
    fit([kept], [gen(5)], x, labels, recipe)
    # by hand: two epochs at lr, then a new optimiser (empty momentum) for two epochs at lr·0.5, same batches
    hand, g = convnet(0), gen(5)  # the generator carries on: it only draws each epoch's batch order here
    fit([hand], [g], x, labels, TrainRecipe(epochs=2, **base))
    fit([hand], [g], x, labels, TrainRecipe(epochs=2, **{**base, "lr": recipe.lr_at(3)}))
    assert torch.equal(flat(fresh), flat(hand))
    assert not torch.allclose(flat(kept), flat(hand), atol=1e-6)  # without the reset momentum carries over


def test_fresh_optimizer_only_acts_under_the_step_schedule(digits):
    x, labels = digits.train_x[:60], Labels(digits.train_y[:60])
    a, b = convnet(0), convnet(0)
    r = TrainRecipe(epochs=3, schedule="cosine", batch_size=20, lr=0.05, momentum=0.9)
    fit([a], [gen(1)], x, labels, r)
    fit([b], [gen(1)], x, labels, TrainRecipe(**{**r.__dict__, "fresh_optimizer_at_decay": True}))
    assert torch.equal(flat(a), flat(b))


# ---- hooks ------------------------------------------------------------------------------------
def test_loss_scale_multiplies_the_loss(digits):
    x, labels = digits.train_x[:40], Labels(digits.train_y[:40])
    recipe = TrainRecipe(epochs=1, batch_size=40, lr=0.01)  # one plain SGD step: Δθ = -lr·scale·∇L
    start = flat(convnet(0))
    moved = {}
    for scale in (0.0, 1.0, 2.0):
        net = convnet(0)
        fit([net], [gen(0)], x, labels, recipe, loss_scale=lambda epoch, s=scale: s)
        moved[scale] = flat(net) - start
    assert torch.equal(moved[0.0], torch.zeros_like(start))
    assert moved[1.0].abs().max() > 1e-4
    assert torch.allclose(moved[2.0], 2 * moved[1.0], rtol=1e-3, atol=5e-7)  # up to rounding of θ (|θ| ≤ 1)
    seen = []
    fit([convnet(0)], [gen(0)], x, labels, TrainRecipe(epochs=2, batch_size=20, lr=0.01),
        loss_scale=lambda epoch: seen.append(epoch) or 1.0)
    assert seen == [1, 1, 2, 2]  # called per batch with the (1-based) epoch


def test_extra_loss_is_added_on_the_clean_batch(digits):
    x, labels = digits.train_x[:40], Labels(digits.train_y[:40])
    net, calls = convnet(0), []

    def extra(model, clean):
        calls.append((model, clean.clone()))
        return model.classifier.bias.sum()  # gradient 1 on every bias entry, 0 elsewhere

    before = {k: v.clone() for k, v in net.state_dict().items()}
    # the main loss scaled to 0: only the extra term moves the network, by lr·1 per step
    fit([net], [gen(0)], x, labels, TrainRecipe(epochs=1, batch_size=20, lr=0.1), dsa=dsa_for(False),
        loss_scale=lambda epoch: 0.0, extra_loss=extra)
    after = net.state_dict()
    assert len(calls) == 2 and all(m is net for m, _ in calls)
    assert torch.allclose(after["classifier.bias"], before["classifier.bias"] - 0.2, atol=1e-6)
    assert all(torch.equal(after[k], before[k]) for k in before if k != "classifier.bias")
    rows = {tuple(r.flatten().tolist()) for r in x}
    for _, clean in calls:  # un-augmented rows of x, not the DSA output
        assert clean.shape == (20, 1, 8, 8) and all(tuple(r.flatten().tolist()) in rows for r in clean)


def test_extra_loss_is_refused_with_more_than_one_network(digits):
    x, labels = digits.train_x[:40], Labels(digits.train_y[:40])
    for vectorised in (False, True):
        with pytest.raises(ValueError, match="exactly one network"):
            fit([convnet(0), convnet(1)], [gen(0), gen(1)], x, labels, TrainRecipe(epochs=1, **FAST),
                vectorised=vectorised, extra_loss=lambda m, b: m.classifier.bias.sum())


# ---- helpers ----------------------------------------------------------------------------------
def test_checkpoint_epochs():
    assert checkpoint_epochs(10, 0) == set() and checkpoint_epochs(0, 0) == set() and checkpoint_epochs(5, -1) == set()
    assert checkpoint_epochs(10, 1) == {10}
    assert checkpoint_epochs(10, 2) == {5, 10}
    assert checkpoint_epochs(10, 10) == set(range(1, 11))
    assert checkpoint_epochs(300, 4) == {75, 150, 225, 300}
    for epochs in range(1, 40):
        for n in range(1, epochs + 1):
            got = checkpoint_epochs(epochs, n)
            assert len(got) == n and max(got) == epochs and min(got) >= 1, (epochs, n, got)


def test_vmap_blocker_names_what_cannot_be_vectorised():
    assert vmap_blocker(convnet(0)) is None
    assert "BatchNorm" in vmap_blocker(convnet(0, "ConvNetBN"))
    assert vmap_blocker(nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10))) == "dropout"


def test_test_accuracy_runs_in_eval_mode_and_restores_the_mode(digits):
    net = convnet(0, "ConvNetBN")
    with torch.no_grad():  # give BatchNorm running statistics unlike any one test batch
        net.train()
        net(digits.train_x[:50] * 3 + 1)
    tx, ty = digits.test_x, digits.test_y
    net.eval()
    with torch.no_grad():
        expected = (net(tx).argmax(1) == ty).double().mean().item()
    net.train()
    with torch.no_grad():
        train_mode = (net(tx).argmax(1) == ty).double().mean().item()
    assert expected != train_mode  # the check below can tell the modes apart
    assert math.isclose(accuracy_of(net, tx, ty), expected, abs_tol=1e-12) and net.training
    assert math.isclose(accuracy_of(net, tx, ty, batch=7), expected, abs_tol=1e-12) and net.training
    net.eval()
    assert math.isclose(accuracy_of(net, tx, ty), expected, abs_tol=1e-12) and not net.training


# ---- targets ----------------------------------------------------------------------------------
def agreement(net: nn.Module, x: torch.Tensor, target_class: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x).argmax(1) == target_class).double().mean().item()


@pytest.mark.parametrize("kind", ["soft_probs", "soft_logits"])
def test_soft_targets_are_what_the_network_learns(digits, kind):
    x, y = digits.train_x, digits.train_y
    shifted = (y + 1) % 10  # targets that disagree with the hard labels everywhere
    onehot = F.one_hot(shifted, 10).float()
    labels = Labels(y, soft_probs=0.9 * onehot + 0.01) if kind == "soft_probs" else Labels(y, soft_logits=6 * onehot)
    net = convnet(0)
    _, losses = run_losses([net], [gen(0)], x, labels, TrainRecipe(epochs=6, labels="soft", **FAST))
    assert losses[-1][1] < 0.5 * losses[0][1]
    assert agreement(net, x, shifted) > 0.6 and agreement(net, x, y) < 0.2


def test_a_teacher_relabels_every_augmented_batch(digits):
    x, y = digits.train_x, digits.train_y
    torch.manual_seed(3)
    linear = nn.Linear(64, 10)
    seen = []

    class Teacher(nn.Module):  # a fixed random linear map of the pixels, recording what it is shown
        def forward(self, xb):
            seen.append(xb.detach().clone())
            return 4 * linear(xb.flatten(1)).detach()

    teacher = Teacher()
    with torch.no_grad():
        teacher_class = teacher(x).argmax(1)
    seen.clear()
    net = convnet(0)
    start = agreement(net, x, teacher_class)
    _, losses = run_losses([net], [gen(0)], x, Labels(y, teacher=teacher), TrainRecipe(epochs=6, labels="teacher",
                                                                                          **FAST), dsa=dsa_for(False))
    assert losses[-1][1] < 0.6 * losses[0][1]
    assert agreement(net, x, teacher_class) > max(0.5, start + 0.3)
    assert len(seen) == 6 * 10 and all(b.shape == (20, 1, 8, 8) for b in seen)
    rows = {tuple(r.flatten().tolist()) for r in x}
    assert any(tuple(r.flatten().tolist()) not in rows for b in seen for r in b)  # it saw the augmented images
