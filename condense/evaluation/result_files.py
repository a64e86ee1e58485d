"""The files `condense report` reads (`condense eval --json` results, the zoo catalog, the outputs of
`scripts/compare_methods.py` and `scripts/bench.py`, a teacher catalog) and the checks on them: types and shapes
of every field the report reads, so a malformed file is one sentence rather than a failure mid-plot."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import CondenseError
from ..io import read_json
from ..fields import AT_LEAST_1, NON_NEGATIVE, Number, check_value
from .catalog import budget, catalog_reports, check_catalog, is_catalog
from .results import EvalReport, GridReport, ModelResult

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


# ---- every result file in the repository, for `condense report` -----------------------------------------
@dataclass
class ResultFiles:
    """What ``condense report`` draws: per-set reports (plots and the accuracy table), and tables of files that
    hold other numbers (timings, teachers), each with its title."""

    reports: list[EvalReport] = field(default_factory=list)
    tables: list[tuple[str, list[str]]] = field(default_factory=list)


def _markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A Markdown table of flat rows (the union of their keys; numbers with 4 significant digits)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    return lines + ["| " + " | ".join(fmt(r.get(k, "")).replace("|", "\\|") for k in keys) + " |" for r in rows]


def _compare_reports(blob: dict[str, Any], where: str) -> list[EvalReport]:
    """``scripts/compare_methods.py`` output: one cell per (row, IPC, seed) with its final accuracy (percent)."""
    settings, cells = blob["settings"], blob["cells"]
    check_value(f"{where}, settings field 'dataset'", settings.get("dataset"), str)
    check_value(f"{where}, settings field 'protocol'", settings.get("protocol"), str)
    model = settings.get("eval_model") if isinstance(settings.get("eval_model"), str) else "ConvNet"
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for key, c in cells.items():
        for name, hint in (("row", str), ("ipc", int), ("seed", int), ("accuracy", Number)):
            check_value(f"{where}, cell '{key}' field '{name}'", c.get(name) if isinstance(c, dict) else None, hint)
        groups.setdefault((c["row"], c["ipc"]), []).append(c)
    protocol = {"name": settings["protocol"], "hash": "unrecorded",
                "description": "as scripts/compare_methods.py ran it (its results record no protocol hash)"}
    reports = []
    for (row, ipc), cs in sorted(groups.items()):
        cs.sort(key=lambda c: c["seed"])
        result = ModelResult(runs=[float(c["accuracy"]) for c in cs],
                             seconds=[float(c.get("eval_seconds", 0.0)) for c in cs], seeds=[c["seed"] for c in cs])
        reports.append(EvalReport(set=f"{row} ipc{ipc}", dataset=settings["dataset"], method=row, ipc=ipc, images=0,
                                  lr=float("nan"), seed=0, seeds=result.seeds, protocol=protocol,
                                  results={model: result}))
    return reports


def _bench_tables(blob: dict[str, Any], path: str) -> list[tuple[str, list[str]]]:
    """``scripts/bench.py`` output: timings per section, shown as tables (no accuracy to plot)."""
    meta = blob.get("meta") if isinstance(blob.get("meta"), dict) else {}
    where = ", ".join(f"{k} {v}" for k, v in meta.items())
    tables = []
    for i, section in enumerate(blob["results"]):
        if not isinstance(section, dict) or not isinstance(section.get("rows"), list) or \
                not all(isinstance(r, dict) for r in section["rows"]):
            raise CondenseError(f"Results file {path}, section {i} has no list of rows.")
        extras = {k: v for k, v in section.items() if k not in ("section", "input", "rows")}
        lines = [f"{section.get('input', '')} ({where})", "", *_markdown(section["rows"])]
        if extras:
            lines += ["", *_markdown([extras])]
        tables.append((f"Benchmark `{section.get('section', i)}` from `{path}`", lines))
    return tables


def _teacher_table(blob: dict[str, Any], path: str) -> list[tuple[str, list[str]]]:
    rows = blob["teachers"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise CondenseError(f"Teacher catalog {path} has 'teachers' that is not a list of rows.")
    if not rows:
        raise CondenseError(f"Teacher catalog {path} lists no teachers.")
    keep = ("file", "role", "dataset", "architecture", "test_accuracy", "epochs", "seed")
    return [(f"Teachers in `{path}`", _markdown([{k: r.get(k) for k in keep} for r in rows]))]


def _unevaluated_table(catalog: dict[str, dict[str, Any]], path: str) -> list[tuple[str, list[str]]]:
    """The catalog's rows without a ConvNet evaluation, listed so that a report built from the catalog shows
    that they exist (its plots draw evaluated rows only)."""
    rows = [{"set": name, "method": row["method"], "dataset": row["dataset"], "ipc": row["ipc"],
             "budget": budget(row)} for name, row in sorted(catalog.items()) if "convnet" not in row]
    return [(f"Sets in `{path}` not evaluated yet ({len(rows)})", _markdown(rows))] if rows else []


def read_result_files(paths: Sequence[str]) -> ResultFiles:
    """Every file a report can draw: ``condense eval --json`` results, the zoo catalog, compare_methods and
    bench outputs, and a teacher catalog; each checked, and one sentence for a file of another kind."""
    out = ResultFiles()
    for path in paths:
        blob = read_json(path, "Results file")
        where = f"Results file {path}"
        if isinstance(blob, dict) and isinstance(blob.get("settings"), dict) and isinstance(blob.get("cells"), dict):
            reports = _compare_reports(blob, where)
        elif isinstance(blob, dict) and isinstance(blob.get("results"), list) and "meta" in blob:
            out.tables += _bench_tables(blob, path)
            continue
        elif isinstance(blob, dict) and set(blob) == {"teachers"}:
            out.tables += _teacher_table(blob, path)
            continue
        elif is_catalog(blob):
            catalog = check_catalog(blob, where)
            reports = catalog_reports(catalog)
            out.tables += _unevaluated_table(catalog, path)
        elif isinstance(blob, dict) and ("results" in blob or "sets" in blob):
            reports = GridReport.from_json(blob, where=where).rows
        else:
            raise CondenseError(f"{where} is not a `condense eval --json` result, nor the zoo catalog, a teacher "
                                f"catalog or an output of scripts/compare_methods.py or scripts/bench.py.")
        check_reports(reports, where)
        out.reports += reports
    return out
