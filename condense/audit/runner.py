"""`condense audit`: load a set and its own real data, run the chosen checks, write one report folder.

The report is built in a staging folder beside ``report_dir`` and swapped in only when every check
succeeded, so a failed audit never leaves a half-written report nor destroys the previous one; an
existing ``report_dir`` that is not an earlier audit report (no ``audit.json``) is refused, not replaced.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Optional, Sequence

import torch

from ..errors import CondenseError
from ..evaluation import real_data_for
from ..fields import SEED, check_value
from ..io import check_output, reading, staged_folder, write_json, write_text
from ..store import SynthSet
from .base import CHECKS, AuditContext, CheckResult, build_config, get_check, unknown_options


def parse_checks(checks: str | Sequence[str]) -> list[str]:
    names = [c.strip() for c in checks.split(",")] if isinstance(checks, str) else list(checks)
    names = [n for n in names if n]
    if names == ["all"]:
        return sorted(CHECKS)
    if not names:
        raise CondenseError("No audit check given; use --checks memorization,mia,reconstruction or all.")
    for n in names:
        get_check(n)
    return names


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
    check_value("The audit seed", seed, int, SEED)
    with reading([set_path, options.get("feature_weights")]):
        check_output(report_dir, folder=True, owned=lambda names: "audit.json" in names)
        synth = SynthSet.load(set_path)
        device = torch.device(device)
        data = real_data_for(synth, dataset, data_root, device, own=True)
        with staged_folder(report_dir) as staging:
            results = []
            for spec, cfg in zip(specs, configs):
                log(f"audit: {spec.name} …")
                ctx = AuditContext(synth=synth, data=data, device=device, out_dir=staging, seed=seed,
                                   set_path=set_path, log=log)
                results.append(spec.run(ctx, cfg))
            write_index(staging, set_path, synth, results, seed)
    return results


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
    write_text(os.path.join(out_dir, "index.md"), "\n".join(lines) + "\n")
    summary = {"set": set_path, "seed": seed,
               "checks": {r.name: {"verdict": r.verdict, "flagged": r.flagged, "settings": r.settings,
                                   "metrics": r.metrics} for r in results}}
    write_json(os.path.join(out_dir, "audit.json"), summary, default=str)
