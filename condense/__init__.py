"""condense: dataset distillation you can install, resume, test and audit.

Notebook use::

    import condense
    synth = condense.distill("dm", "mnist5k", ipc=10, iterations=100)
    report = condense.evaluate(synth, runs=3)
    synth.save("mnist5k_dm_ipc10.h5"); condense.SynthSet.load("mnist5k_dm_ipc10.h5")
"""
from .errors import CondenseError
from .store import SynthSet

__version__ = "0.1.0"
__all__ = ["CondenseError", "SynthSet", "distill", "evaluate", "__version__"]


def distill(*args, **kwargs):
    """See :func:`condense.synth.distill`."""
    from .synth import distill as _distill

    return _distill(*args, **kwargs)


def evaluate(*args, **kwargs):
    """See :func:`condense.evaluator.evaluate`."""
    from .evaluator import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
