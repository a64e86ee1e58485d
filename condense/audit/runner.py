"""`condense audit`: load a set and its own real data, run the chosen checks, write one report folder.

The report is built in a staging folder beside ``report_dir`` and swapped in only when every check
succeeded, so a failed audit never leaves a half-written report nor destroys the previous one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Callable, Optional, Sequence

import torch

from ..data import load_dataset
from ..errors import CondenseError
from ..store import SynthSet
from .base import AuditContext, CheckResult, build_config, get_check, unknown_options

DEFAULT_CHECKS = ("memorization",)


def parse_checks(checks: str | Sequence[str]) -> list[str]:
    names = [c.strip() for c in checks.split(",")] if isinstance(checks, str) else list(checks)
    names = [n for n in names if n]
    if names == ["all"]:
        from . import checks as _  # noqa: F401
        from .base import CHECKS

        return sorted(CHECKS)
    if not names:
        raise CondenseError("No audit check given; use --checks memorization,mia,reconstruction or all.")
    for n in names:
        get_check(n)
    return names


def audit_data(synth: SynthSet, dataset: Optional[str], data_root: Optional[str], device) -> Any:
    """The set's own training data: auditing against another dataset would measure nothing."""
    if dataset and dataset != synth.dataset:
        raise CondenseError(f"The set was distilled from '{synth.dataset}', not '{dataset}'; an audit compares a "
                            f"set with its own training data.")
    root = data_root if data_root is not None else synth.config.get("run", {}).get("data_root")
    max_per_class = synth.config.get("run", {}).get("max_per_class")
    data = load_dataset(synth.dataset, root=root, max_per_class=max_per_class, device=device)
    if data.num_classes != synth.num_classes or tuple(data.image_shape) != tuple(synth.image_shape):
        raise CondenseError(f"The set's classes or image shape do not match dataset '{data.name}'; it comes from "
                            f"another dataset.")
    return data


def run_audit(set_path: str, checks: str | Sequence[str], report_dir: str, *, options: Optional[dict] = None,
              dataset: Optional[str] = None, data_root: Optional[str] = None, device: str | torch.device = "cpu",
              seed: int = 0, log: Callable[[str], None] = lambda m: None) -> list[CheckResult]:
    options = dict(options or {})
    names = parse_checks(checks)
    specs = [get_check(n) for n in names]
    stray = unknown_options(specs, options)
    if stray:
        raise CondenseError(f"Option '{stray[0]}' belongs to none of the checks {', '.join(names)}.")
    configs = [build_config(s, options) for s in specs]  # validate every config before any work
    synth = SynthSet.load(set_path)
    device = torch.device(device)
    data = audit_data(synth, dataset, data_root, device)
    parent = os.path.dirname(os.path.abspath(report_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".audit-", dir=parent)
    try:
        results = []
        for spec, cfg in zip(specs, configs):
            log(f"audit: {spec.name} …")
            ctx = AuditContext(synth=synth, data=data, device=device, out_dir=staging, seed=seed,
                               set_path=set_path, log=log)
            results.append(spec.run(ctx, cfg))
        write_index(staging, set_path, synth, results, seed)
        _swap_in(staging, report_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return results


def _swap_in(staging: str, report_dir: str) -> None:
    old = None
    if os.path.exists(report_dir):
        old = report_dir.rstrip("/") + ".old-" + os.path.basename(staging)
        os.replace(report_dir, old)
    os.replace(staging, report_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_index(out_dir: str, set_path: str, synth: SynthSet, results: Sequence[CheckResult], seed: int) -> None:
    lines = [f"# Audit of `{os.path.basename(set_path)}`", "",
             f"Set: {synth.method}, {synth.dataset}, {len(synth.images)} images "
             f"({synth.num_classes} classes), seed {synth.seed}. Audit seed {seed}.", "",
             "| check | verdict |", "|---|---|"]
    lines += [f"| {r.name} | {'⚠ ' if r.flagged else ''}{r.verdict} |" for r in results]
    for r in results:
        lines += ["", f"## {r.name}", "", r.markdown.strip(), ""]
        for caption, fname in r.figures:
            lines += [f"![{caption}]({fname})", "", f"*{caption}*", ""]
        if r.settings:
            lines += ["Settings:", "", "```json", json.dumps(r.settings, indent=2, default=str), "```", ""]
    with open(os.path.join(out_dir, "index.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    summary = {"set": set_path, "seed": seed,
               "checks": {r.name: {"verdict": r.verdict, "flagged": r.flagged, "settings": r.settings,
                                   "metrics": r.metrics} for r in results}}
    with open(os.path.join(out_dir, "audit.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
