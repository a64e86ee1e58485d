"""Expert buffers: bit-exact round trip, clear rejection of broken files, resume, torchrun sharding, ZCA."""
import os
import subprocess
import sys

import h5py
import pytest
import torch

from condense.cli import main
from condense.data import load_dataset
from condense.errors import CondenseError
from condense.experts import (ExpertBuffer, ExpertConfig, expert_path, load_expert, read_header, train_buffer,
                              train_expert, write_expert)

TINY = dict(dataset="digits", model_args={"width": 8}, epochs=1, lr=0.05, batch_size=128)
CLI_TINY = ["--dataset", "digits", "--model-args", '{"width": 8}', "--epochs", "1", "--lr", "0.05",
            "--batch-size", "128", "--device", "cpu"]


def one_sentence(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_expert_file_round_trips_bit_exact(tmp_path):
    cfg = ExpertConfig.for_style("mtt", **TINY)
    data = load_dataset("digits")
    params, layout, acc = train_expert(cfg, data, 3, torch.device("cpu"))
    assert params.shape == (cfg.epochs + 1, layout.size)
    assert not torch.equal(params[0], params[-1])  # it trained
    path = str(tmp_path / "expert.h5")
    write_expert(path, params, layout, cfg, 3, acc)
    header, loaded = load_expert(path)
    assert torch.equal(loaded, params)
    assert header.config == cfg and header.index == 3 and header.test_accuracy == pytest.approx(acc)
    assert header.layout == layout and header.snapshots == cfg.epochs + 1
    # Same seed and index -> the same expert (what makes resume and sharding reproducible).
    again, _, _ = train_expert(cfg, data, 3, torch.device("cpu"))
    assert torch.equal(again, params)


def test_truncated_or_corrupt_expert_is_rejected_clearly(tmp_path):
    cfg = ExpertConfig.for_style("mtt", **TINY)
    folder = str(tmp_path / "buf")
    train_buffer(cfg, folder, 1, torch.device("cpu"), log=lambda m: None)
    path = expert_path(folder, 0)
    blob = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(blob[: len(blob) // 2])
    for call in (lambda: read_header(path), lambda: ExpertBuffer(folder)):
        with pytest.raises(CondenseError) as err:
            call()
        assert "corrupt or truncated" in str(err.value) and "\n" not in str(err.value)
    # A flipped value inside the params is caught by the per-row checksum.
    with open(path, "wb") as f:
        f.write(blob)
    with h5py.File(path, "r+") as f:
        f["params"][1, 0] += 1.0
    with pytest.raises(CondenseError, match="fails its checksum at epoch 1"):
        ExpertBuffer(folder).rows(0, 0, 2)


def test_interrupted_experts_command_resumes(tmp_path, monkeypatch, capsys):
    import condense.experts.buffer as buffer

    folder = str(tmp_path / "buf")
    real_train, calls = buffer.train_expert, []

    def dies_on_second(cfg, data, index, device):
        calls.append(index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(cfg, data, index, device)

    monkeypatch.setattr(buffer, "train_expert", dies_on_second)
    assert main(["experts", *CLI_TINY, "--experts", "2", "--out", folder, "--quiet"]) == 130
    assert sorted(os.listdir(folder)) == ["buffer.h5", "expert_00000.h5"]  # no partial or temp file
    first = open(expert_path(folder, 0), "rb").read()
    monkeypatch.setattr(buffer, "train_expert", real_train)
    assert main(["experts", *CLI_TINY, "--experts", "2", "--out", folder, "--quiet"]) == 0
    assert open(expert_path(folder, 0), "rb").read() == first  # kept, not retrained
    header, resumed = load_expert(expert_path(folder, 1))
    fresh, _, _ = real_train(header.config, load_dataset("digits"), 1, torch.device("cpu"))
    assert torch.equal(resumed, fresh)  # the resumed expert is the one an uninterrupted run makes
    # Other settings in the same folder: refused, one sentence.
    capsys.readouterr()
    code = main(["experts", *CLI_TINY[:-4], "--lr", "0.2", "--device", "cpu", "--experts", "2", "--out", folder])
    assert code == 2
    assert "other settings" in one_sentence(capsys.readouterr().err)


def test_torchrun_two_ranks_write_every_expert_once(tmp_path):
    folder = str(tmp_path / "buf")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "condense.cli", "experts", *CLI_TINY, "--experts", "3", "--out", folder]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = [line for line in proc.stderr.splitlines() if "done in" in line]
    assert sorted(done) == sorted(set(done)) and len(done) == 3, proc.stderr[-3000:]
    assert sum("rank 0: expert 0 " in d for d in done) == 1 and sum("rank 1: expert 1 " in d for d in done) == 1
    assert sum("rank 0: expert 2 " in d for d in done) == 1
    assert sorted(os.listdir(folder)) == ["buffer.h5", "expert_00000.h5", "expert_00001.h5", "expert_00002.h5"]
    buf = ExpertBuffer(folder)
    assert [h.index for h in buf.headers] == [0, 1, 2]
    assert len({h.seed for h in buf.headers}) == 3  # each index trained once, with its own seed


def test_zca_matches_kornia_and_is_stored_with_the_buffer(tmp_path):
    from kornia.enhance import ZCAWhitening

    from condense.data import apply_zca, fit_zca

    data = load_dataset("digits")
    x01 = data.denormalize(data.train_x)
    matrix, mean = fit_zca(x01)
    reference = ZCAWhitening(eps=0.1).fit(x01)(x01)
    assert torch.allclose(apply_zca(x01, matrix, mean), reference, atol=1e-4)
    folder = str(tmp_path / "zca")
    cfg = ExpertConfig.for_style("mtt", **{**TINY, "zca": True})
    train_buffer(cfg, folder, 1, torch.device("cpu"), log=lambda m: None)
    buf = ExpertBuffer(folder)
    assert buf.zca is not None and torch.equal(buf.zca[0], matrix) and torch.equal(buf.zca[1], mean)
    # MTT over a ZCA buffer works in ZCA space, carries the transform, and eval scores in that space.
    from condense.evaluation import real_data_for
    from condense.synth import distill

    synth = distill("mtt", "digits", 1, model_args=TINY["model_args"], device="cpu", experts=folder, iterations=1,
                    syn_steps=2, max_start_epoch=1, expert_epochs=1)
    assert torch.equal(synth.zca_matrix, matrix) and torch.equal(synth.zca_mean, mean)
    scored = real_data_for(synth, device=torch.device("cpu"))
    assert torch.allclose(scored.test_x, apply_zca(data.denormalize(data.test_x), matrix, mean))


def test_ast_style_is_data_and_trains_differently_from_the_same_init():
    ast = ExpertConfig.for_style("ast", **{**TINY, "lr": None})
    assert (ast.lr, ast.momentum, ast.weight_decay, ast.lr_decay, ast.loss_ramp, ast.grad_penalty) == \
        (0.003, 0.9, 1e-3, 0.6, True, 2.0)
    mtt = ExpertConfig.for_style("mtt", **{**TINY, "lr": None})
    assert (mtt.lr, mtt.momentum, mtt.weight_decay, mtt.lr_decay, mtt.grad_penalty) == (0.01, 0.0, 0.0, 1.0, 0.0)
    data = load_dataset("digits")
    a, _, _ = train_expert(ast, data, 0, torch.device("cpu"))
    m, _, _ = train_expert(mtt, data, 0, torch.device("cpu"))
    assert torch.equal(a[0], m[0]) and not torch.equal(a[1], m[1]) and bool(torch.isfinite(a).all())
    with pytest.raises(CondenseError, match="Unknown expert style 'sgd'"):
        ExpertConfig.for_style("sgd")
