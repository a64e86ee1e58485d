import os
from contextlib import contextmanager

import pytest
import torch

# The tests use tiny networks: one thread avoids OpenMP spin-waits, which made small graphs up to
# 30x slower on a loaded 2-core machine (measured), and leaves the second core to subprocess tests.
torch.set_num_threads(1)


@pytest.fixture
def tiny_set():
    """A small valid SynthSet in memory (3 classes, 2 per class, 1×8×8)."""
    from condense.store import SynthSet

    g = torch.Generator().manual_seed(0)
    return SynthSet(images=torch.randn(6, 1, 8, 8, generator=g), labels=torch.arange(3).repeat_interleave(2),
                    dataset="digits", num_classes=3, class_names=["a", "b", "c"], mean=(0.5,), std=(0.25,),
                    method="test", config={"note": "tiny"}, seed=7, iterations_done=3)


@pytest.fixture(scope="module")
def shared_tmp():
    """A temporary folder every user can enter (pytest's own are 0700), for tests run as an unprivileged user."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="condense-test-")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def unprivileged():
    """The body runs without root's override of file permissions (as 'nobody' when we are root), so that
    chmod-ed files and read-only folders refuse access as they would for any user."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def nobody():
    return unprivileged


@pytest.fixture(scope="session")
def digits_teachers(tmp_path_factory):
    """Two small ConvNetBN teachers (width 16, seeds 0 and 1) trained briefly on digits by `condense teachers`'s
    library call: the folder, shared by the decoupled-family, soft-label and teacher tests."""
    from condense.teachers import TeacherRecipe, train_teachers

    folder = str(tmp_path_factory.mktemp("teachers"))
    train_teachers("digits", ["ConvNetBN"], folder, seeds=2, model_args={"width": 16},
                   recipe=TeacherRecipe(epochs=8, batch_size=64), quiet=True)
    return folder
