import os

import pytest
import torch

# Tests are sized for 2 CPU cores; keep torch from oversubscribing when pytest runs in parallel.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_set():
    """A small valid SynthSet in memory (3 classes, 2 per class, 1×8×8)."""
    from condense.store import SynthSet

    g = torch.Generator().manual_seed(0)
    return SynthSet(images=torch.randn(6, 1, 8, 8, generator=g), labels=torch.arange(3).repeat_interleave(2),
                    dataset="digits", num_classes=3, class_names=["a", "b", "c"], mean=(0.5,), std=(0.25,),
                    method="test", config={"note": "tiny"}, seed=7, iterations_done=3)
