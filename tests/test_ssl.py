"""`condense ssl` (condense.ssl): the Barlow Twins loss, the views, the network file, and resume after a kill."""
import os

import pytest
import torch

from condense.cli import main
from condense.errors import CondenseError
from condense.models import load_network, read_network_info
from condense.ssl import SSLConfig, ViewConfig, barlow_twins_loss, checkpoint_path, train_ssl, two_views

ARGV = ["ssl", "--dataset", "digits", "--model-args", '{"width": 8}', "--epochs", "3", "--batch-size", "512",
        "--set", "proj_dim=16", "--set", "hidden=16", "--device", "cpu", "--quiet"]
CFG = SSLConfig(dataset="digits", model_args={"width": 8}, epochs=3, batch_size=512, proj_dim=16, hidden=16)


def test_barlow_twins_loss_is_zero_only_for_identical_decorrelated_views():
    g = torch.Generator().manual_seed(0)
    z = torch.linalg.qr(torch.randn(64, 8, generator=g))[0] * 8  # orthogonal columns: decorrelated dimensions
    z = z - z.mean(0)
    assert barlow_twins_loss(z, z, 5e-3).item() == pytest.approx(0.0, abs=1e-3)
    assert barlow_twins_loss(z, torch.randn(64, 8, generator=g), 5e-3).item() > 5.0


def test_views_are_a_function_of_the_generator_and_keep_the_shape():
    x = torch.randn(4, 3, 16, 16)
    a = two_views(x, (0.5,) * 3, (0.25,) * 3, ViewConfig(), torch.Generator().manual_seed(1))
    b = two_views(x, (0.5,) * 3, (0.25,) * 3, ViewConfig(), torch.Generator().manual_seed(1))
    assert a[0].shape == x.shape and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1])


def test_killed_ssl_run_resumes_to_the_uninterrupted_weights(tmp_path, capsys):
    straight = str(tmp_path / "straight.h5")
    assert main(ARGV + ["--out", straight]) == 0
    out = str(tmp_path / "killed.h5")

    def kill(epoch, _loss):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ssl(CFG, out, device="cpu", on_epoch=kill)
    assert os.path.exists(checkpoint_path(out)) and not os.path.exists(out)
    assert main(ARGV + ["--out", out]) == 2 and "unfinished run" in capsys.readouterr().err
    assert main(ARGV + ["--out", out, "--resume"]) == 0
    assert not os.path.exists(checkpoint_path(out))
    a, info = load_network(straight)
    b, _ = load_network(out)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert info.role == "ssl" and info.architecture == "BarlowTwins" and len(info.metrics["losses"]) == 3
    assert info.metrics["losses"] == read_network_info(out).metrics["losses"]
    assert info.metrics["losses"][-1] < info.metrics["losses"][0]
    assert a.embed(torch.zeros(2, 1, 8, 8)).shape == (2, 8)


def test_resume_refuses_other_settings_and_bad_options(tmp_path):
    out = str(tmp_path / "e.h5")

    def kill(epoch, _loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ssl(CFG, out, device="cpu", on_epoch=kill)
    with pytest.raises(CondenseError, match="other settings"):
        train_ssl(SSLConfig(**{**CFG.__dict__, "lr": 0.01}), out, device="cpu", resume=True)
    with pytest.raises(CondenseError, match="Nothing to resume"):
        train_ssl(CFG, str(tmp_path / "none.h5"), device="cpu", resume=True)
    with pytest.raises(CondenseError, match="option 'off_diagonal'"):
        train_ssl(SSLConfig(off_diagonal=-1.0), str(tmp_path / "x.h5"), device="cpu")
