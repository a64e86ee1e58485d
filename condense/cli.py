"""The `condense` command: a thin layer over the Python API.

Bad input prints one sentence on stderr and exits with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any, Callable, Optional, Sequence


from . import dist
from .audit import run_audit
from .data import ValidationSpec, list_datasets, load_dataset
from .device import resolve_device
from .errors import CondenseError
from .evaluation import resolve_models, run_grid
from .evaluation.kernel_eval import evaluate_kernel
from .evaluation.references import build_reference, full_accuracy, is_references_folder
from .evaluation.transfer import TransferConfig, evaluate_transfer
from .evaluation.plots import render_report
from .evaluation.catalog import entry_table, read_catalog, zoo_table, default_catalog
from .evaluation.result_files import is_report_folder, read_result_files
from .evaluation.tables import console as _console, markdown, plural, ranking_table, rich_table, split_table, \
    titled_table
from .experts import ExpertConfig, train_buffer
from .fields import SEED, Range, check_value
from .grids import save_grid
from .interop import FORMATS, LAYOUTS, export_set, file_sha256, import_set
from .io import check_output, reading, staged_folder, write_json, write_text
from .mae import MAEConfig, train_mae
from .ssl import SSLConfig, train_ssl
from .store import SynthSet
from .synth import distill, list_methods
from .teachers import TeacherRecipe, record_in_catalog, train_teachers
from .version import __version__

DEFAULT_OUT = os.path.join("synth_sets", "{dataset}_{method}_ipc{ipc}.h5")


def _shown(default: Any) -> bool:
    """Whether help should state this default (0 is a value to state; None, False and [] are not)."""
    return default is not None and default is not False and default != [] and default is not argparse.SUPPRESS


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default (unless it is None, False or already said in the text)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not _shown(action.default) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)".strip()


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence and exit 2 (argparse's own code), and help shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any):
        if not kwargs.get("help") and _shown(kwargs.get("default")):
            kwargs["help"] = "(default: %(default)s)"  # argparse prints nothing for an option without help
        return super().add_argument(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise CondenseError(f"{message[0].upper()}{message[1:].rstrip('.')} (see `{self.prog} --help`).")


def parse_json(text: Optional[str], option: str, kind: type = dict) -> Any:
    """A JSON option value, or one sentence naming the option and what was expected."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CondenseError(f"{option} is not valid JSON ({err.msg} at character {err.pos}): {text!r}.") from None
    if not isinstance(value, kind):
        raise CondenseError(f"{option} must be a JSON {'object' if kind is dict else kind.__name__}, got {text!r}.")
    return value


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` pairs -> options; values are JSON when they parse, else strings."""
    settings: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CondenseError(f"--set expects KEY=VALUE (e.g. --set lr_img=0.5), got '{pair}'.")
        try:
            settings[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key.replace("-", "_")] = raw
    return settings


def _inputs(args) -> list[str]:
    """Every file and folder the command reads, whatever the command: no output may land on one."""
    settings = parse_settings(args.set) if isinstance(getattr(args, "set", None), list) else {}
    dataset = getattr(args, "dataset", None) or ""
    paths = [getattr(args, "data_root", None), dataset.partition("imagefolder:")[2], getattr(args, "set_path", None),
             getattr(args, "references", None), getattr(args, "feature_weights", None),
             settings.get("feature_weights"), settings.get("experts")]
    paths += [v for v in (getattr(args, "set", None), getattr(args, "experts", None)) if isinstance(v, str)]
    paths += list(getattr(args, "sets", None) or []) + list(getattr(args, "results", None) or [])
    paths += [getattr(args, "source", None), getattr(args, "syn_lr", None), getattr(args, "catalog", None)]  # import, zoo
    paths += f"{getattr(args, 'teacher', None) or ''},{settings.get('teacher') or ''}".split(",")  # teacher(s)
    paths += [getattr(args, "ssl", None), settings.get("target")]  # krr_st's target network, transfer's SSL target
    paths += [settings.get("mae"), settings.get("bins_file")]  # dq's masked autoencoder and bins
    paths += [t.partition("imagefolder:")[2] for t in getattr(args, "transfer", None) or []]
    if str(getattr(args, "protocol", "")).endswith(".json"):
        paths.append(args.protocol)
    return [p for p in paths if isinstance(p, str) and p]


def _log(args) -> Optional[Callable[[str], None]]:
    return None if args.quiet else (lambda m: _console(stderr=True).print(m))


# ---- commands -------------------------------------------------------------------------------
def cmd_datasets(args) -> int:
    table = titled_table("Datasets")
    for col in ("name", "shape", "classes", "needs --data-root", "description"):
        table.add_column(col)
    for info in list_datasets():
        table.add_row(info.name, "×".join(map(str, info.image_shape)) if info.image_shape else "any",
                      str(info.num_classes or "any"), "yes" if info.needs_root else "no", info.description)
    _console().print(table)
    return 0


_METHOD_OPTIONS = ("iterations", "lr_img", "batch_real", "init", "flip", "min_distance",
                   "experts", "syn_steps", "expert_epochs", "max_start_epoch", "grad_mode",  # these five: mtt
                   "teacher")  # sre2l, rded, infer


# `condense distill` with no --method: the configuration that converged fastest on the validation split.
DEFAULT_JOB = {"method": "dm", "preset": "cpu"}


def cmd_distill(args) -> int:
    if args.method is None:
        if args.preset is not None:
            raise CondenseError("--preset names a bundle of one method's options; give --method too.")
        args.method, args.preset = DEFAULT_JOB["method"], DEFAULT_JOB["preset"]
    out = args.out or DEFAULT_OUT.format(dataset=args.dataset.replace(":", "_").replace("/", "_"),
                                         method=args.method, ipc=args.ipc)
    options = {k: getattr(args, k) for k in _METHOD_OPTIONS if getattr(args, k) is not None}
    options["flip"] = options.get("flip") or None  # absent flag: keep the method's preset
    options.update(parse_settings(args.set))
    synth = distill(args.method, args.dataset, args.ipc, out=out, resume=args.resume, restart=args.restart,
                    quiet=args.quiet, checkpoint_every=args.checkpoint_every, data_root=args.data_root,
                    model=args.model, model_args=parse_json(args.model_args, "--model-args"), seed=args.seed, device=args.device,
                    max_per_class=args.max_per_class, preset=args.preset,
                    validation=ValidationSpec(args.validation) if args.validation is not None else None, **options)
    if not args.quiet and dist.is_main():
        _console().print(f"Wrote [bold]{out}[/]: {synth.images.shape[0]} images "
                         f"({synth.ipc} per class, {synth.method}, {plural(synth.iterations_done, 'iteration')}).")
    return 0


def cmd_eval(args) -> int:
    if args.transfer or args.kernel:
        return cmd_eval_kernel_family(args)
    if args.runs is not None:  # the seeds of every run are listed up front: a count, not a budget
        check_value("--runs", args.runs, int, Range(1, 10_000))
    md = args.markdown or (os.path.splitext(args.json)[0] + ".md" if args.json else None)
    for path in filter(None, (args.json, md)):  # before the training, not after
        check_output(path)
    grid = run_grid(args.sets, models=args.models, protocol=args.protocol, runs=args.runs, epochs=args.epochs,
                    seed=args.seed, reference=args.reference, log=_log(args) if dist.is_main() else None,
                    dataset=args.dataset, data_root=args.data_root, device=args.device, sequential=args.sequential,
                    model_args=parse_json(args.model_args, "--model-args"), split=args.split,
                    progress=not args.quiet and dist.is_main(), ior=not args.no_ior, references=args.references,
                    lr_grid=parse_json(f"[{args.lr_grid}]", "--lr-grid", list) if args.lr_grid else None,
                    teacher=args.teacher)
    if not dist.is_main():
        return 0
    _console().print(rich_table(grid))
    for extra in (split_table(grid), ranking_table(grid)):
        if extra is not None:
            _console().print(extra)
    if args.json:
        write_json(args.json, grid.to_json())
    if md:
        write_text(md, markdown(grid))
    return 0


def cmd_eval_kernel_family(args) -> int:
    """`eval --transfer TARGET` (pre-train on each set, fine-tune on TARGET) or `eval --kernel ntk|nngp` (KRR)."""
    if args.transfer and args.kernel:
        raise CondenseError("--transfer and --kernel are two different evaluations; give one.")
    md = args.markdown or (os.path.splitext(args.json)[0] + ".md" if args.json else None)
    for path in filter(None, (args.json, md)):
        check_output(path)
    if args.kernel:
        reports = [evaluate_kernel(args.sets, args.kernel, dataset=args.dataset, data_root=args.data_root,
                                   device=resolve_device(args.device), split=args.split)]
    else:
        if args.dataset or args.reference or args.split != "test":
            raise CondenseError("--transfer scores on the target's test split; drop --dataset, --reference and "
                                "--split.")
        models = resolve_models(args.models)
        if len(models) != 1:
            raise CondenseError("Transfer evaluation pre-trains one architecture; give exactly one with --models.")
        options = {"pretrain_epochs": args.pretrain_epochs, "finetune_steps": args.finetune_steps,
                   "linear_steps": args.finetune_steps, "runs": args.runs}
        cfg = TransferConfig(targets=args.transfer, data_root=args.data_root, ssl=args.ssl or "", model=models[0],
                             model_args=parse_json(args.model_args, "--model-args") or {}, seed=args.seed,
                             fractions=parse_json(f"[{args.label_fractions}]", "--label-fractions", list),
                             modes=[m.strip() for m in args.transfer_modes.split(",") if m.strip()],
                             **{k: v for k, v in options.items() if v is not None})
        reports = evaluate_transfer([(p, SynthSet.load(p)) for p in args.sets], cfg, device=args.device,
                                    log=_log(args) or (lambda m: None))
    for report in reports:
        _console().print(report.rich_table())
    if args.json:
        write_json(args.json, reports[0].to_json() if args.kernel else
                   {"kind": "transfer", "reports": [r.to_json() for r in reports]})
    if md:
        write_text(md, "\n".join(r.markdown() for r in reports))
    return 0


def cmd_ssl(args) -> int:
    options = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr") if getattr(args, k) is not None}
    options.update(parse_settings(args.set))
    own = {"dataset", "data_root", "max_per_class", "model", "model_args", "seed"}
    known = sorted(f for f in SSLConfig.__dataclass_fields__ if f not in own)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CondenseError(f"`condense ssl` has no option '{unknown[0]}'; --set takes: {', '.join(known)}.")
    cfg = SSLConfig(dataset=args.dataset, data_root=args.data_root, max_per_class=args.max_per_class,
                    model=args.model, model_args=parse_json(args.model_args, "--model-args") or {}, seed=args.seed,
                    **options)
    train_ssl(cfg, args.out, device=args.device, resume=args.resume, restart=args.restart, quiet=args.quiet,
              log=_log(args) or (lambda m: None))
    catalog = record_in_catalog(args.out)  # a teacher folder's catalog lists its self-supervised targets too
    if not args.quiet:
        _console().print(f"Wrote [bold]{args.out}[/] (a {cfg.model} Barlow Twins encoder, role ssl)"
                         + (f"; {catalog} lists it." if catalog else "."))
    return 0


def cmd_mae(args) -> int:
    options = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr") if getattr(args, k) is not None}
    options.update(parse_settings(args.set))
    own = {"dataset", "data_root", "max_per_class", "seed"}
    known = sorted(f for f in MAEConfig.__dataclass_fields__ if f not in own)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CondenseError(f"`condense mae` has no option '{unknown[0]}'; --set takes: {', '.join(known)}.")
    cfg = MAEConfig(dataset=args.dataset, data_root=args.data_root, max_per_class=args.max_per_class, seed=args.seed,
                    **options)
    train_mae(cfg, args.out, device=args.device, resume=args.resume, restart=args.restart, quiet=args.quiet,
              log=_log(args) or (lambda m: None))
    catalog = record_in_catalog(args.out)  # a teacher folder's catalog lists the masked autoencoders dq sets name
    if not args.quiet:
        _console().print(f"Wrote [bold]{args.out}[/] (a masked autoencoder, role autoencoder: give it to dq with "
                         f"--set mae={args.out})" + (f"; {catalog} lists it." if catalog else "."))
    return 0


def cmd_reference(args) -> int:
    if args.out:
        check_output(args.out, folder=True, owned=is_references_folder)
    data = load_dataset(args.dataset, root=args.data_root, device=resolve_device(args.device))
    model_args = parse_json(args.model_args, "--model-args")
    for model in resolve_models(args.models):
        path = build_reference(data, model, model_args, args.out, seed=args.seed, log=_log(args) or (lambda m: None),
                               weights=args.weights)
        where = f"[bold]{path}[/]" if path.endswith(".h5") else \
            f"from [bold]{path}[/] (no network file here; --weights rebuilds it)"
        _console().print(f"{model}: {full_accuracy(data, model, model_args, args.out):.2f}% on {data.name} (full), "
                         f"{where}")
    return 0


def cmd_report(args) -> int:
    """The page is built aside and swapped in whole; an existing --out folder must be an earlier report."""
    check_output(args.out, folder=True, owned=is_report_folder)
    found = read_result_files(args.results)  # eval results, the zoo catalog, compare/bench outputs, teachers
    with staged_folder(args.out) as staging:
        render_report(found.reports, staging, sources=args.results, tables=found.tables)
    _console().print(f"Wrote [bold]{os.path.join(args.out, 'README.md')}[/] and its plots.")
    return 0


def cmd_audit(args) -> int:
    options = parse_settings(args.set)
    for key in ("shadows", "canaries", "feature_model", "feature_weights"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    report = args.report or os.path.splitext(args.set_path)[0] + "_audit"
    results = run_audit(args.set_path, args.checks, report, options=options, dataset=args.dataset,
                        data_root=args.data_root, device=resolve_device(args.device), seed=args.seed,
                        log=_log(args) or (lambda m: None))
    table = titled_table(f"Audit of {os.path.basename(args.set_path)}")
    table.add_column("check")
    table.add_column("verdict")
    for r in results:
        table.add_row(r.name, f"[yellow]{r.verdict}[/]" if r.flagged else r.verdict)
    _console().print(table)
    _console().print(f"Report: [bold]{os.path.join(report, 'index.md')}[/]")
    return 0


def cmd_show(args) -> int:
    png = args.png  # grids are written only when asked, never beside the set by default
    decoded = os.path.splitext(png)[0] + "_decoded.png" if png else None
    if png:
        check_output(png)
    synth = SynthSet.load(args.set)
    if png and synth.decoder["kind"] != "identity":
        check_output(decoded)
    table = titled_table(args.set, show_header=False)  # a path, never markup
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [("method", synth.method), ("dataset", synth.dataset), ("images", str(synth.images.shape[0])),
            ("image shape", "×".join(map(str, synth.image_shape))), ("IPC", str(synth.ipc)),
            ("classes", f"{synth.num_classes}: {', '.join(synth.class_names)}"),
            ("labels", synth.label_kind), ("decoder", json.dumps(synth.decoder)),
            ("stored bytes", f"{synth.storage_bytes()['total']:,}"), ("seed", str(synth.seed)),
            ("iterations done", str(synth.iterations_done)),
            ("learned lr", "-" if synth.lr is None else f"{float(synth.lr):.6g}"),
            ("ZCA", "yes" if synth.zca_matrix is not None else "no"), ("created", synth.created),
            ("versions", ", ".join(f"{k} {v}" for k, v in synth.versions.items()))]
    run_cfg, method_cfg = (v if isinstance(v, dict) else {} for v in (synth.config.get("run"),
                                                                      synth.config.get("method_config")))
    rows += [("model", f"{run_cfg.get('model', '-')} {json.dumps(run_cfg.get('model_args') or {})}")]
    rows += [(f"config: {k}", str(v)) for k, v in sorted(method_cfg.items())]
    imported = synth.config.get("imported") if isinstance(synth.config.get("imported"), dict) else {}
    rows += [("imported from", f"{imported.get('source')} ({imported.get('layout')}, pixels {imported.get('pixels')})")] \
        if imported else []
    rows += [("data fingerprint", synth.dataset_fingerprint or "- (format 1)")]
    for k, v in rows:
        table.add_row(k, v)
    console = _console()
    console.print(table)
    if not png:
        console.print("Add --png FILE to draw the set's images (one row per class).")
        return 0
    save_grid(synth, png)
    console.print(f"Grid written to [bold]{png}[/]")
    if synth.decoder["kind"] != "identity":  # also the training images the stored ones stand for
        save_grid(synth, decoded, decoded=True)
        console.print(f"Decoded grid ({synth.decoder['kind']}) written to [bold]{decoded}[/]")
    return 0


def _floats(text: Optional[str], option: str) -> Optional[list[float]]:
    """``--mean 0.49,0.48,0.45`` -> floats, or one sentence."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise CondenseError(f"{option} takes comma-separated numbers, one per channel, got {text!r}.") from None


def cmd_export(args) -> int:
    synth = SynthSet.load(args.set)
    export_set(synth, args.format, args.out, pixels=args.pixels, mean=_floats(args.mean, "--mean"),
               std=_floats(args.std, "--std"), source=args.set, checksum=file_sha256(args.set))
    images, _ = synth.decode()
    _console().print(f"Wrote [bold]{args.out}[/] ({args.format}): {images.shape[0]} training images of "
                     f"{synth.num_classes} classes, class by class.")
    return 0


def cmd_import(args) -> int:
    synth = import_set(args.source, args.dataset, args.out, layout=args.layout, data_root=args.data_root,
                       pixels=args.pixels, mean=_floats(args.mean, "--mean"), std=_floats(args.std, "--std"),
                       entry=args.entry, syn_lr=args.syn_lr, zca=args.zca, check_stats=not args.skip_stats_check)
    lr = "" if synth.lr is None else f", learned lr {float(synth.lr):.4g}"
    _console().print(f"Wrote [bold]{args.out}[/]: {len(synth.images)} images ({synth.ipc} per class, "
                     f"{synth.label_kind} labels{lr}) of {synth.dataset}, {synth.method}.")
    return 0


def cmd_zoo(args) -> int:
    path = args.catalog or default_catalog()
    catalog = read_catalog(path)
    _console().print(entry_table(args.name, catalog, path) if args.name else zoo_table(catalog, os.path.relpath(path)))
    return 0


def cmd_teachers(args) -> int:
    recipe = TeacherRecipe(**{k: getattr(args, k) for k in ("epochs", "batch_size", "lr")
                              if getattr(args, k) is not None})
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    paths = train_teachers(args.dataset, models, args.out, seeds=args.seeds,
                           model_args=parse_json(args.model_args, "--model-args") or {}, recipe=recipe,
                           data_root=args.data_root, max_per_class=args.max_per_class,
                           device=resolve_device(args.device), quiet=args.quiet, log=_log(args) or (lambda m: None))
    if not args.quiet:
        _console().print(f"{plural(len(paths), 'teacher')} in [bold]{args.out}[/] (catalog.json lists them).")
    return 0


def cmd_experts(args) -> int:
    cfg = ExpertConfig.for_style(args.style, dataset=args.dataset, data_root=args.data_root,
                                 max_per_class=args.max_per_class, model=args.model,
                                 model_args=parse_json(args.model_args, "--model-args") or {}, epochs=args.epochs,
                                 lr=args.lr, batch_size=args.batch_size, zca=args.zca, seed=args.seed)
    train_buffer(cfg, args.out, args.experts, resolve_device(args.device), log=_log(args) or (lambda m: None))
    return 0


# ---- parser ---------------------------------------------------------------------------------
def _add_network_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every resumable network-training command shares (`condense ssl`, `condense mae`)."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="the network file (.h5); OUT.ckpt.pt holds the checkpoint")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.ckpt.pt")
    parser.add_argument("--restart", action="store_true", help="discard OUT.ckpt.pt of an unfinished run and start over")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="condense", description="Dataset distillation: distil, evaluate and inspect synthetic sets.")
    p.add_argument("--version", action="version", version=f"condense {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    sub.add_parser("datasets", help="list the datasets condense can read").set_defaults(func=cmd_datasets)

    d = sub.add_parser("distill", help="learn a synthetic set")
    d.add_argument("--method", default=None, help=f"one of: {', '.join(list_methods())} (default: dm with "
                                                  f"--preset cpu, the main job)")
    d.add_argument("--dataset", default="mnist5k")
    d.add_argument("--data-root", default=None, help="folder holding on-disk datasets (cifar10, mnist, ...)")
    d.add_argument("--ipc", type=int, default=10, help="images per class")
    d.add_argument("--iterations", type=int, default=None, help="outer iterations (default: the method's preset)")
    d.add_argument("--model", default="ConvNet")
    d.add_argument("--model-args", default=None, help='JSON of model overrides, e.g. \'{"width": 64}\'')
    d.add_argument("--lr-img", type=float, default=None)
    d.add_argument("--batch-real", type=int, default=None)
    d.add_argument("--init", default=None, help="real | noise")
    d.add_argument("--flip", action="store_true", help="FYI flip plug-in")
    d.add_argument("--min-distance", type=float, default=None, metavar="D",
                   help="dm/datadam defence: keep every image at least D (L2, [0,1] pixels) from all real training images")
    d.add_argument("--preset", default=None, help="named option bundle, e.g. ast (with --method mtt)")
    d.add_argument("--experts", default=None, help="mtt: expert buffer folder from `condense experts`")
    d.add_argument("--syn-steps", type=int, default=None, help="mtt: student steps N per iteration")
    d.add_argument("--expert-epochs", type=int, default=None, help="mtt: target epoch offset M")
    d.add_argument("--max-start-epoch", type=int, default=None, help="mtt: start epoch t < T+")
    d.add_argument("--grad-mode", default=None, help="mtt: unrolled | recompute (same gradient, constant memory)")
    d.add_argument("--teacher", default=None, help="sre2l, rded, infer: a teacher folder, network file or files "
                                                   "(default: synth_sets/teachers, $CONDENSE_TEACHERS); graphcut, "
                                                   "dq: the network whose gradients embed the images (default: the "
                                                   "run's model, trained briefly)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any method hyper-parameter, e.g. --set momentum=0.9 (repeatable)")
    d.add_argument("--max-per-class", type=int, default=None, help="cap real training images per class")
    d.add_argument("--validation", type=float, default=None, metavar="FRACTION",
                   help="hold this fraction of every class out of distillation (seed 0), to select settings on it "
                        "with `condense eval --split validation`")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default=None, help=f"output .h5 (default {DEFAULT_OUT})")
    d.add_argument("--resume", action="store_true", help="continue from OUT.ckpt.pt")
    d.add_argument("--restart", action="store_true", help="discard OUT.ckpt.pt of an unfinished run and start over")
    d.add_argument("--checkpoint-every", type=int, default=25)
    d.add_argument("--device", default="auto")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_distill)

    e = sub.add_parser("eval", help="train fresh networks on sets and report test accuracy (torchrun: jobs sharded)")
    e.add_argument("sets", nargs="+", metavar="SET.h5", help="one or more sets, compared with the same protocol and seeds")
    e.add_argument("--models", default="ConvNet", help="comma-separated architectures, or 'all' (the cross-arch grid)")
    e.add_argument("--runs", type=int, default=None, help="seeds per architecture (default: the protocol's)")
    e.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    e.add_argument("--protocol", default="standard", help="name in eval/protocols (standard, long, fast, soft, relabel, kd) "
                                                         "or a .json file")
    e.add_argument("--reference", default=None, help="add a reference row: full | random")
    e.add_argument("--sequential", action="store_true", default=None,
                   help="train seeds one by one (the default on CPU; seeds are vectorised on CUDA)")
    e.add_argument("--vectorised", dest="sequential", action="store_false",
                   help="train the seeds of an architecture together with vmap (the default on CUDA)")
    e.add_argument("--model-args", default=None, help='JSON of model overrides for every architecture')
    e.add_argument("--dataset", default=None, help="evaluate on this dataset instead of the set's own")
    e.add_argument("--data-root", default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-ior", action="store_true",
                   help="skip DD-Ranking's metrics (IOR trains a random real subset of the same storage per run, "
                        "doubling the cost; HLR and LRS read a stored full-data reference, see `condense reference`)")
    e.add_argument("--references", default=None, metavar="DIR",
                   help="full-data references (default: $CONDENSE_REFERENCES, else the checkout's synth_sets/references)")
    e.add_argument("--lr-grid", default=None, metavar="LR,LR,...",
                   help="choose each architecture's learning rate first: one run per value, scored on the selection "
                        "split (never on test), e.g. 0.003,0.01,0.03")
    e.add_argument("--teacher", default=None, metavar="DIR|FILE[,FILE]",
                   help="soft-label protocols: the teachers that label a set without soft labels (soft), relabel "
                        "every batch (relabel) or replace kd's cached teacher; a set that names its teachers is "
                        "checked against them")
    e.add_argument("--transfer", action="append", default=None, metavar="TARGET",
                   help="transfer evaluation: pre-train a fresh --models network on each set (MSE to a krr_st set's "
                        "targets, CE otherwise), fine-tune / linear-probe it on a labelled share of TARGET (e.g. "
                        "cifar10@classes=0,1,8,9), beside no pre-training and a random subset; repeat for more "
                        "targets (each pre-trained network serves all)")
    e.add_argument("--label-fractions", default="0.01,0.1", metavar="F,F",
                   help="--transfer: labelled share of every target class (default 0.01,0.1)")
    e.add_argument("--transfer-modes", default="finetune,linear", help="--transfer: finetune, linear or both")
    e.add_argument("--pretrain-epochs", type=int, default=None, help="--transfer: pre-training epochs (default 200)")
    e.add_argument("--finetune-steps", type=int, default=None,
                   help="--transfer: optimiser steps of fine-tuning and of the linear probe (default 1000)")
    e.add_argument("--ssl", default=None, metavar="FILE.h5",
                   help="--transfer: the self-supervised target network of the random-subset baseline (default: "
                        "the one a krr_st set names by checksum, found in $CONDENSE_TEACHERS or synth_sets/teachers; "
                        "a file given for such a set must be that one; without one the subset is pre-trained "
                        "with CE on its labels)")
    e.add_argument("--kernel", default=None, choices=("ntk", "nngp"),
                   help="kernel-regression accuracy of each set as the support of KRR under the analytic kernel of a "
                        "wide ReLU MLP (kip, rkip: their own kernel)")
    e.add_argument("--split", default="test", choices=("test", "validation"),
                   help="score on the test split (the headline), or on the validation split the set was distilled "
                        "without (for selecting settings)")
    e.add_argument("--json", default=None, help="write the results here (Markdown beside it)")
    e.add_argument("--markdown", default=None, help="write the Markdown table here")
    e.add_argument("--device", default="auto")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    f = sub.add_parser("reference", help="train full-data references (the HLR of condense eval), once per dataset "
                                         "and architecture")
    f.add_argument("--dataset", default="mnist5k")
    f.add_argument("--data-root", default=None)
    f.add_argument("--models", default="ConvNet", help="comma-separated architectures, or 'all'")
    f.add_argument("--model-args", default=None)
    f.add_argument("--out", default=None, help="folder (default: $CONDENSE_REFERENCES, else synth_sets/references)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--weights", action="store_true",
                   help="train the network even when the folder's catalog.json already has its accuracy (the "
                        "weights are not committed; HLR needs only the accuracy)")
    f.add_argument("--device", default="auto")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=cmd_reference)

    r = sub.add_parser("report", help="plots and a Markdown page from result files: `condense eval --json` results, "
                                      "the zoo catalog, compare_methods.py and bench.py outputs")
    r.add_argument("results", nargs="+", metavar="RESULTS.json")
    r.add_argument("--out", required=True, help="output folder (PNGs + README.md)")
    r.set_defaults(func=cmd_report)

    a = sub.add_parser("audit", help="privacy audits: memorization, membership inference, reconstruction")
    a.add_argument("set_path", metavar="SET.h5")
    a.add_argument("--checks", default="memorization", help="comma list of memorization, mia, reconstruction, or all")
    a.add_argument("--report", default=None, help="report folder (default: SET_audit/ beside the set)")
    a.add_argument("--shadows", type=int, default=None, help="mia: shadow pipelines (default 16, at least 2)")
    a.add_argument("--canaries", type=int, default=None, help="mia: audit points from the training set (default 500)")
    a.add_argument("--feature-model", default=None, help="memorization: feature network (default: a trained ConvNet)")
    a.add_argument("--feature-weights", default=None,
                   help="memorization: a network file (.h5, e.g. the one a report saved) or a state_dict .pt")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any check option, e.g. --set ssim_window=7 (repeatable)")
    a.add_argument("--dataset", default=None, help="must be the set's own dataset (checked)")
    a.add_argument("--data-root", default=None)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--device", default="auto")
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=cmd_audit)

    s = sub.add_parser("show", help="print a set's metadata (and draw its images with --png)")
    s.add_argument("set", metavar="SET.h5")
    s.add_argument("--png", default=None, metavar="FILE.png",
                   help="draw the stored images here, one row per class (and FILE_decoded.png for a set with a decoder)")
    s.set_defaults(func=cmd_show)

    o = sub.add_parser("export", help="write a set's training images and labels as an image folder, .npz or .pt "
                                      "(the official DC/DM/MTT and DD-Ranking layout)")
    o.add_argument("set", metavar="SET.h5")
    o.add_argument("--format", required=True, choices=FORMATS)
    o.add_argument("--out", required=True, metavar="PATH", help="the file (npz, pt) or folder (imagefolder)")
    o.add_argument("--pixels", default=None, choices=("normalised", "unit"),
                   help="normalised (exact; default for npz and pt) or unit: [0, 1], clamped (default for imagefolder)")
    o.add_argument("--mean", default=None, metavar="M[,M,M]",
                   help="renormalise with this mean (with --std) instead of the set's, e.g. another code's constants")
    o.add_argument("--std", default=None, metavar="S[,S,S]")
    o.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="check a set made elsewhere (official DC/DSA/DM, MTT, DataDAM files, an image "
                                      "folder, an .npz) against its dataset and save it as a SynthSet")
    i.add_argument("source", metavar="PATH", help="the file or folder to import")
    i.add_argument("--dataset", required=True, help="the dataset it was distilled from (checked against the data)")
    i.add_argument("--data-root", default=None, help="folder holding on-disk datasets (default: $CONDENSE_DATA)")
    i.add_argument("--layout", default="auto", choices=LAYOUTS, help="how the file is laid out (auto detects it)")
    i.add_argument("--entry", type=int, default=None,
                   help="dc/datadam result files: which [images, labels] pair of 'data' (default: the last)")
    i.add_argument("--pixels", default=None, choices=("normalised", "unit"),
                   help="what the images hold (default: what the file says, else normalised; image folders: unit)")
    i.add_argument("--mean", default=None, metavar="M[,M,M]",
                   help="the normalisation the file used (default: the official one for a torchvision dataset, else "
                        "the dataset's statistics)")
    i.add_argument("--std", default=None, metavar="S[,S,S]")
    i.add_argument("--syn-lr", default=None, metavar="LR|FILE.pt", help="the learned step size (MTT keeps it apart)")
    i.add_argument("--zca", action="store_true", help="the images live in ZCA space (MTT --zca): condense fits the "
                                                      "dataset's ZCA and stores it with the set")
    i.add_argument("--skip-stats-check", action="store_true",
                   help="accept pixel statistics unlike the dataset's (the check catches a wrong normalisation)")
    i.add_argument("--out", required=True, metavar="SET.h5")
    i.set_defaults(func=cmd_import)

    z = sub.add_parser("zoo", help="list the published sets (synth_sets/catalog.json), or show one with its commands")
    z.add_argument("name", nargs="?", default=None, metavar="NAME", help="an entry, e.g. cifar10_dm_ipc10")
    z.add_argument("--catalog", default=None, metavar="FILE",
                   help="the catalog (default: $CONDENSE_ZOO, else the checkout's synth_sets/catalog.json)")
    z.set_defaults(func=cmd_zoo)

    t = sub.add_parser("teachers", help="train teacher networks on the full real training data (sre2l, rded, "
                                        "infer, soft-label evaluation), resumably")
    t.add_argument("--dataset", default="mnist5k")
    t.add_argument("--data-root", default=None)
    t.add_argument("--max-per-class", type=int, default=None, help="cap real training images per class (the sets "
                                                                   "to label must use the same cap)")
    t.add_argument("--models", default="ConvNetBN", help="comma-separated architectures (default ConvNetBN)")
    t.add_argument("--seeds", type=int, default=1, help="teachers per architecture (seeds 0..N-1)")
    t.add_argument("--model-args", default=None, help='JSON of model overrides, e.g. \'{"width": 64}\'')
    t.add_argument("--epochs", type=int, default=None, help="epochs (default 30)")
    t.add_argument("--lr", type=float, default=None, help="SGD lr, cosine schedule (default 0.05)")
    t.add_argument("--batch-size", type=int, default=None, help="default 256")
    t.add_argument("--out", required=True, help="folder (teachers already there are kept; a killed run resumes)")
    t.add_argument("--device", default="auto")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_teachers)

    q = sub.add_parser("ssl", help="train a self-supervised (Barlow Twins) encoder on the unlabeled training split, "
                                   "resumably: the target network of krr_st (write it into synth_sets/teachers "
                                   "or $CONDENSE_TEACHERS, where sets find it by checksum; that catalog lists it)")
    q.add_argument("--dataset", default="mnist5k")
    q.add_argument("--data-root", default=None)
    q.add_argument("--max-per-class", type=int, default=None)
    q.add_argument("--model", default="ConvNetBN", help="the backbone (e.g. ConvNetBN, ResNet18BN)")
    q.add_argument("--model-args", default=None, help='JSON of backbone overrides, e.g. \'{"width": 64}\'')
    q.add_argument("--epochs", type=int, default=None, help="default 20")
    q.add_argument("--batch-size", type=int, default=None, help="default 256")
    q.add_argument("--lr", type=float, default=None, help="AdamW lr, cosine schedule (default 1e-3)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other option: proj_dim, hidden, weight_decay, off_diagonal, crop_scale, jitter")
    _add_network_run_options(q)
    q.set_defaults(func=cmd_ssl)

    m = sub.add_parser("mae", help="train the small masked autoencoder that fills the patches dq drops, resumably")
    m.add_argument("--dataset", default="mnist5k")
    m.add_argument("--data-root", default=None)
    m.add_argument("--max-per-class", type=int, default=None)
    m.add_argument("--epochs", type=int, default=None, help="default 20")
    m.add_argument("--batch-size", type=int, default=None, help="default 256")
    m.add_argument("--lr", type=float, default=None, help="AdamW lr, cosine schedule (default 1e-3)")
    m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other option: patch (0: the grid nearest DQ's 14x14), dim, depth, heads, decoder_dim, "
                        "decoder_depth, mlp_ratio, mask_ratio, eval_mask_ratio, weight_decay")
    _add_network_run_options(m)
    m.set_defaults(func=cmd_mae)

    x = sub.add_parser("experts", help="train expert trajectories for trajectory matching (mtt)")
    x.add_argument("--dataset", default="mnist5k")
    x.add_argument("--data-root", default=None)
    x.add_argument("--max-per-class", type=int, default=None)
    x.add_argument("--experts", type=int, default=10, help="number of experts N")
    x.add_argument("--epochs", type=int, default=50, help="epochs E per expert (E+1 snapshots)")
    x.add_argument("--style", default="mtt", help="mtt (plain SGD) | ast (momentum, wd, decay, loss ramp, GP)")
    x.add_argument("--zca", action="store_true", help="kornia ZCA whitening (eps 0.1), stored with the buffer")
    x.add_argument("--model", default="ConvNet")
    x.add_argument("--model-args", default=None, help='JSON of model overrides, e.g. \'{"width": 64}\'')
    x.add_argument("--lr", type=float, default=None, help="expert lr (default: the style's)")
    x.add_argument("--batch-size", type=int, default=256)
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--out", required=True, help="buffer folder (experts already there are skipped)")
    x.add_argument("--device", default="auto")
    x.add_argument("--quiet", action="store_true")
    x.set_defaults(func=cmd_experts)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        if getattr(args, "seed", None) is not None:
            check_value("--seed", args.seed, int, SEED)
        # Library warnings would add lines to the one-sentence error contract; the outcome is what we report.
        with warnings.catch_warnings(), reading(_inputs(args)):
            warnings.simplefilter("ignore")
            return args.func(args)
    except CondenseError as err:
        print(f"condense: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("condense: interrupted.", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as err:  # torch's allocators raise RuntimeError
        if not isinstance(err, MemoryError) and not any(w in str(err) for w in ("can't allocate", "out of memory")):
            raise
        print("condense: out of memory; ask for less (fewer runs or shadows, smaller widths or batches).",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
