"""Class-sharded DM/DataDAM/IDM under torchrun (2 gloo ranks) writes the one-process file, bit for bit."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from condense.synth import distill

TINY = ["--dataset", "digits", "--ipc", "3", "--model-args", '{"width": 8}', "--batch-real", "24",
        "--device", "cpu", "--quiet", "--checkpoint-every", "2"]
OPTS = dict(model_args={"width": 8}, batch_real=24, device="cpu")  # the same run as TINY, in-process
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(args, ranks=1, port=29541):
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port", str(port)] if ranks > 1 else []
    done = subprocess.run([sys.executable, *launcher, "-m", "condense.cli", *args], env=ENV, capture_output=True,
                          text=True, timeout=300)
    return done


def _arrays(path):
    with h5py.File(path, "r") as f:
        return f["images"][()], f["labels"][()]


POOL = {"pool_interval": 2, "pool_steps": 2, "pool_batch": 16}  # idm: a small, quickly renewed pool


@pytest.mark.parametrize("method, extra", [("dm", {}), ("datadam", {}), ("idm", POOL)])
def test_two_ranks_write_the_one_process_set(tmp_path, method, extra):
    """Every rank trains the same network pool (idm), so sharding classes still gives the one-process file."""
    one, two = str(tmp_path / "one.h5"), str(tmp_path / "two.h5")
    distill(method, "digits", 3, iterations=5, out=one, checkpoint_every=2, **OPTS, **extra)  # the one-process file
    sets = [a for k, v in extra.items() for a in ("--set", f"{k}={v}")]
    done = _cli(["distill", "--method", method, "--iterations", "5", *TINY, *sets, "--out", two], ranks=2)
    assert done.returncode == 0, done.stderr[-8000:]  # long: a rank's own error sits above torchrun's summary
    (a, la), (b, lb) = _arrays(one), _arrays(two)
    assert np.array_equal(la, lb)
    assert np.array_equal(a, b)  # bit-exact, momentum state shared at every checkpoint included
    assert not np.array_equal(a, _init_images(tmp_path))  # the run moved the pixels
    assert not os.path.exists(two + ".ckpt.pt")


def _init_images(tmp_path):
    """The real draw DM/DataDAM start from (same seed), via the in-process API."""
    return distill("random", "digits", 3, device="cpu").images.numpy()


def test_one_process_checkpoint_resumes_on_two_ranks(tmp_path):
    """A checkpoint is the full set plus momentum, so a run can resume with another world size."""
    out, ref = str(tmp_path / "run.h5"), str(tmp_path / "ref.h5")

    def interrupt(it, stats):
        if it == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill("dm", "digits", 3, iterations=7, out=out, checkpoint_every=2, on_step=interrupt, **OPTS)
    assert os.path.exists(out + ".ckpt.pt")
    done = _cli(["distill", "--method", "dm", "--iterations", "7", "--resume", *TINY, "--out", out], ranks=2)
    assert done.returncode == 0, done.stderr[-8000:]  # long: a rank's own error sits above torchrun's summary
    distill("dm", "digits", 3, iterations=7, out=ref, checkpoint_every=0, **OPTS)
    assert np.array_equal(_arrays(out)[0], _arrays(ref)[0])


def test_methods_that_cannot_shard_are_refused(tmp_path, monkeypatch):
    from condense import dist
    from condense.errors import CondenseError

    monkeypatch.setattr(dist, "world", lambda: 2)  # as under torchrun, without the launch cost
    with pytest.raises(CondenseError, match="cannot be sharded"):
        distill("dc", "digits", 1, iterations=1, out=str(tmp_path / "dc.h5"), model_args={"width": 8}, device="cpu")
    assert not os.path.exists(tmp_path / "dc.h5")
