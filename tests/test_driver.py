import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from condense.errors import CondenseError
from condense.store import SynthSet
from condense.synth import checkpoint_path, distill

TINY = {"model_args": {"width": 8}, "device": "cpu"}


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(CondenseError, match="Nothing to resume"):
        distill("dm", "digits", 2, iterations=6, out=str(tmp_path / "r.h5"), resume=True, **TINY)


def test_resume_after_interrupt_is_bit_exact(tmp_path, monkeypatch):
    out = str(tmp_path / "s.h5")
    straight = distill("dm", "digits", 2, iterations=6, **TINY)

    calls = {"n": 0}

    def interrupt(it, stats):
        if it == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill("dm", "digits", 2, iterations=6, out=out, checkpoint_every=2, on_step=interrupt, **TINY)
    assert not os.path.exists(out) and os.path.exists(checkpoint_path(out))
    resumed = distill("dm", "digits", 2, iterations=6, out=out, resume=True, checkpoint_every=2,
                      on_step=lambda it, s: calls.__setitem__("n", calls["n"] + 1), **TINY)
    assert calls["n"] == 2  # iterations 5 and 6 only
    assert torch.equal(resumed.images, straight.images)
    assert torch.equal(SynthSet.load(out).images, straight.images)
    assert not os.path.exists(checkpoint_path(out))


def test_resume_with_other_settings_is_refused(tmp_path):
    out = str(tmp_path / "s.h5")
    with pytest.raises(KeyboardInterrupt):
        distill("dm", "digits", 2, iterations=4, out=out, checkpoint_every=1,
                on_step=lambda it, s: (_ for _ in ()).throw(KeyboardInterrupt), **TINY)
    with pytest.raises(CondenseError, match="different settings"):
        distill("dm", "digits", 2, iterations=4, out=out, resume=True, lr_img=0.5, **TINY)


def _interrupted_at(out, it_stop, method="dm", **options):
    def interrupt(it, stats):
        if it == it_stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(method, "digits", 2, out=out, checkpoint_every=1, on_step=interrupt, **options)


def test_resume_below_the_checkpoint_iteration_is_refused(tmp_path):
    out = str(tmp_path / "s.h5")
    _interrupted_at(out, 3, iterations=6, **TINY)
    with pytest.raises(CondenseError, match="already at iteration 3, beyond the requested 2"):
        distill("dm", "digits", 2, iterations=2, out=out, resume=True, **TINY)


def test_a_longer_budget_extends_dm_but_not_a_scheduled_method(tmp_path, digits_teachers):
    out = str(tmp_path / "dm.h5")
    _interrupted_at(out, 2, iterations=3, **TINY)
    assert distill("dm", "digits", 2, iterations=5, out=out, resume=True, **TINY).images.shape[0] == 20
    out = str(tmp_path / "sre2l.h5")  # its cosine lr spans the budget: a longer one is another run
    options = {"teacher": digits_teachers, "device": "cpu", "model_args": {"width": 16}}
    _interrupted_at(out, 2, method="sre2l", iterations=3, **options)
    with pytest.raises(CondenseError, match="different settings"):
        distill("sre2l", "digits", 2, iterations=5, out=out, resume=True, **options)


def test_diverging_run_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = str(tmp_path / "s.h5")
    earlier = SynthSet.load(distill("random", "digits", 2, out=out, device="cpu") and out)
    with pytest.raises(CondenseError, match="diverged") as err:
        distill("dm", "digits", 2, iterations=50, out=out, lr_img=1e38, checkpoint_every=1, **TINY)
    assert "\n" not in str(err.value)
    ckpt = torch.load(checkpoint_path(out), weights_only=True)
    assert torch.isfinite(ckpt["images"]).all()
    assert torch.equal(SynthSet.load(out).images, earlier.images)  # the earlier result is not lost


def test_kill_9_then_resume_completes(tmp_path):
    out = str(tmp_path / "k.h5")
    cmd = [sys.executable, "-m", "condense.cli", "distill", "--dataset", "digits", "--ipc", "2",
           "--iterations", "100000", "--model-args", '{"width": 8}', "--checkpoint-every", "5", "--device", "cpu",
           "--quiet", "--out", out]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = checkpoint_path(out)
    deadline, reached = time.time() + 600, 0  # a guard against a hang, not a timing
    while time.time() < deadline and proc.poll() is None and reached < 10:
        time.sleep(0.1)
        try:
            reached = torch.load(ckpt, weights_only=True)["iteration"]
        except Exception:  # not written yet (it only ever appears whole, via os.replace)
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached >= 10 and not os.path.exists(out), proc.stderr.read()
    reached = torch.load(ckpt, weights_only=True)["iteration"]
    target = str(reached + 10)
    done = subprocess.run(cmd[:-3] + ["--iterations", target, "--quiet", "--out", out, "--resume"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    synth = SynthSet.load(out)
    assert synth.iterations_done == int(target) and torch.isfinite(synth.images).all()
