"""Checks on `condense eval --json` results before `condense report` draws them: types and shapes of
every field the report reads, so a malformed file is one sentence rather than a failure mid-plot."""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import CondenseError
from ..fields import AT_LEAST_1, NON_NEGATIVE, Number, check_value
from .results import EvalReport

# The files render_report (plots.py) can write into its folder: an existing --out folder holding
# anything else is not an earlier report, and is refused rather than replaced.
REPORT_FILES = ("README.md", "accuracy_vs_ipc.png", "cross_arch.png", "curves.png")

_REPORT_TYPES: dict[str, Any] = {"set": (str, None), "dataset": (str, None), "method": (str, None),
                                 "ipc": (int, AT_LEAST_1), "images": (int, NON_NEGATIVE)}
_RESULT_TYPES: dict[str, Any] = {"runs": list[float], "best_runs": list[float],
                                 "curves": list[list[tuple[Number, float]]],
                                 "loss_curves": list[list[tuple[Number, Number]]], "seconds": list[Number],
                                 "seeds": list[int], "trainer": str}


def is_report_folder(names: Sequence[str]) -> bool:
    return set(names) <= set(REPORT_FILES)


def check_reports(reports: Sequence[EvalReport], where: str) -> None:
    """Every field a report page reads, typed; at least one result with at least one run per report."""
    if not reports:
        raise CondenseError(f"{where} holds no evaluation results.")
    for r in reports:
        name = f"{where}, set '{r.set or r.method}',"
        for field, (hint, rng) in _REPORT_TYPES.items():
            check_value(f"{name} field '{field}'", getattr(r, field), hint, rng)
        for key in ("name", "hash"):
            check_value(f"{name} protocol field '{key}'", r.protocol.get(key), str)
        if not r.results:
            raise CondenseError(f"{name} has no results.")
        for model, res in r.results.items():
            for field, hint in _RESULT_TYPES.items():
                check_value(f"{name} results of '{model}', field '{field}'", getattr(res, field), hint)
            if not res.runs:
                raise CondenseError(f"{name} results of '{model}' hold no runs.")
