"""KRR-ST (condense.synth.krr_st): objective, pool, stored targets, resume, bad input."""
import os

import pytest
import torch
import torch.nn.functional as F

from condense.errors import CondenseError
from condense.kernels import KRR_ST_RIDGE, feature_kernel, krr_predict
from condense.models import create_model, load_network
from condense.ssl import SSLConfig, train_ssl
from condense.store import SynthSet
from condense.synth import checkpoint_path, distill, prepare

TINY = {"device": "cpu", "model": "ConvNetBN", "model_args": {"width": 16}}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """A tiny Barlow Twins encoder of digits (1 epoch): the self-supervised target."""
    path = str(tmp_path_factory.mktemp("ssl") / "ssl.h5")
    return train_ssl(SSLConfig(dataset="digits", model_args={"width": 8}, proj_dim=16, hidden=16, epochs=1), path,
                     device="cpu")


def probe_objective(synth, data, target_net, probes=4):
    """The KRR-ST loss on every real training image, un-augmented, averaged over fixed random probe networks."""
    with torch.no_grad():
        y_real = target_net.embed(data.train_x)
        total = 0.0
        for p in range(probes):
            torch.manual_seed(100 + p)
            net = create_model("ConvNetBN", 1, synth.labels.shape[1], (8, 8), width=16).eval()
            f_syn, f_real = net.embed(synth.images), net.embed(data.train_x)
            pred = krr_predict(feature_kernel(f_real, f_syn), feature_kernel(f_syn), synth.labels, KRR_ST_RIDGE)
            total += F.mse_loss(pred, y_real).item()
    return total / probes


def test_objective_decreases_on_digits(target):
    """Fresh random networks (pool 0) and the whole real split un-augmented: the loss the method descends,
    measured on fixed probe networks (measured 0.0209 -> 0.0186)."""
    opts = {**TINY, "target": target, "pool": 0, "augment": False, "batch_real": 2000, "lr_img": 1e-2,
            "iterations": 40}
    method = prepare("krr_st", "digits", 5, **opts)
    start = method.init().detached()
    end = distill("krr_st", "digits", 5, **opts)
    net, _ = load_network(target)
    before, after = probe_objective(start, method.ctx.dataset, net), probe_objective(end, method.ctx.dataset, net)
    assert after < 0.95 * before, (before, after)


def test_set_holds_images_and_learned_regression_targets(target):
    start = prepare("krr_st", "digits", 3, iterations=4, target=target, pool=2, pool_age=3, batch_real=64, **TINY)
    first = start.init().detached()
    net, info = load_network(target)
    assert torch.allclose(first.labels, net.embed(first.images), atol=1e-5)  # Y_s starts as target(X_s)
    end = distill("krr_st", "digits", 3, iterations=4, target=target, pool=2, pool_age=3, batch_real=64, **TINY)
    assert end.label_kind == "regression" and end.labels.shape == (30, net.feature_dim)
    assert end.images.shape == (30, 1, 8, 8) and not torch.equal(end.images, first.images)
    assert not torch.equal(end.labels, first.labels)  # the targets are learned too
    assert end.config["target"]["checksum"] == info.checksum
    with pytest.raises(CondenseError, match="regression targets"):
        end.hard_labels


@pytest.mark.parametrize("reset_age", [True, False])
def test_resume_is_bit_exact_with_the_online_pool(target, tmp_path, reset_age):
    """Pool members age, train one step per use and are reset (pool_age 3): all of it is in the checkpoint."""
    opts = {**TINY, "target": target, "pool": 2, "pool_age": 3, "batch_real": 64, "iterations": 6,
            "checkpoint_every": 1, "reset_age": reset_age}
    straight = distill("krr_st", "digits", 2, **opts)
    out = str(tmp_path / "k.h5")

    def stop(done, _stats):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill("krr_st", "digits", 2, out=out, on_step=stop, **opts)
    assert os.path.exists(checkpoint_path(out))
    resumed = distill("krr_st", "digits", 2, out=out, resume=True, **opts)
    assert torch.equal(straight.images, resumed.images) and torch.equal(straight.labels, resumed.labels)
    assert torch.equal(SynthSet.load(out).labels, resumed.labels)


def test_bad_input_is_one_sentence(target, tmp_path):
    with pytest.raises(CondenseError, match="needs a self-supervised target"):
        distill("krr_st", "digits", 1, iterations=1, **TINY)
    with pytest.raises(CondenseError, match="takes 1×8×8 images but mnist5k"):
        distill("krr_st", "mnist5k", 1, iterations=1, target=target, **TINY)
    with pytest.raises(CondenseError, match="asks for 5000 images"):
        distill("krr_st", "digits", 1, iterations=1, target=target, images=5000, **TINY)
    with pytest.raises(CondenseError, match="lr_final"):
        distill("krr_st", "digits", 1, iterations=1, target=target, lr_final=2.0, **TINY)
    with pytest.raises(CondenseError, match="option 'pool_age' must be an integer ≥ 1"):
        distill("krr_st", "digits", 1, iterations=1, target=target, pool_age=0, **TINY)
