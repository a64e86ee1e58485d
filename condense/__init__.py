"""condense: dataset distillation you can install, resume, test and audit.

Notebook use::

    import condense
    synth = condense.distill("dm", "mnist5k", ipc=10, iterations=100)
    report = condense.evaluate(synth, runs=3)
    synth.save("mnist5k_dm_ipc10.h5"); condense.SynthSet.load("mnist5k_dm_ipc10.h5")
"""
from .errors import CondenseError
from .evaluation import evaluate
from .store import SynthSet
from .synth import distill
from .version import __version__

__all__ = ["CondenseError", "SynthSet", "distill", "evaluate", "__version__"]
