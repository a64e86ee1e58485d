"""`condense mae` (condense.mae): the loss goes down, the network file, resume after a kill, bad options."""
import os

import pytest
import torch

from condense.cli import main
from condense.errors import CondenseError
from condense.mae import MAEConfig, checkpoint_path, train_mae
from condense.models import load_network, read_network_info

TINY = {"dim": 16, "depth": 1, "heads": 2, "decoder_dim": 16, "decoder_depth": 1}
ARGV = ["mae", "--dataset", "digits", "--epochs", "3", "--batch-size", "128", "--lr", "0.003", "--device", "cpu",
        "--quiet"] + [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
CFG = MAEConfig(dataset="digits", epochs=3, batch_size=128, lr=0.003, **TINY)


def test_killed_mae_run_resumes_to_the_uninterrupted_weights_and_learns(tmp_path, capsys):
    straight = str(tmp_path / "straight.h5")
    assert main(ARGV + ["--out", straight]) == 0
    out = str(tmp_path / "killed.h5")

    def kill(epoch, _loss):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_mae(CFG, out, device="cpu", on_epoch=kill)
    assert os.path.exists(checkpoint_path(out)) and not os.path.exists(out)
    assert main(ARGV + ["--out", out]) == 2 and "unfinished run" in capsys.readouterr().err
    assert main(ARGV + ["--out", out, "--resume"]) == 0
    assert not os.path.exists(checkpoint_path(out))
    a, info = load_network(straight)
    b, _ = load_network(out)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert info.role == "autoencoder" and info.architecture == "MAE" and info.model_args["dim"] == 16
    losses = info.metrics["losses"]
    assert len(losses) == 3 and losses == read_network_info(out).metrics["losses"]
    assert losses[-1] < losses[0]  # it learns to predict dropped pixels
    assert info.metrics["test_mse_dropped_0.2"] < info.metrics["test_mse_mean_fill_0.2"]  # better than the mean
    assert a.patch == 1  # digits are 8×8: the grid nearest DQ's 14×14 is 8×8 one-pixel patches


def test_resume_refuses_other_settings_and_bad_options(tmp_path):
    out = str(tmp_path / "e.h5")

    def kill(epoch, _loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_mae(CFG, out, device="cpu", on_epoch=kill)
    with pytest.raises(CondenseError, match="other settings"):
        train_mae(MAEConfig(**{**CFG.__dict__, "lr": 0.01}), out, device="cpu", resume=True)
    with pytest.raises(CondenseError, match="Nothing to resume"):
        train_mae(CFG, str(tmp_path / "none.h5"), device="cpu", resume=True)
    with pytest.raises(CondenseError, match="option 'mask_ratio'"):
        train_mae(MAEConfig(mask_ratio=1.0), str(tmp_path / "x.h5"), device="cpu")
