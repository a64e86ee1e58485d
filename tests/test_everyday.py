"""The rough edges a new user hits: --version, defaults in help, real API signatures, `condense show` grids sized to
the IPC and written only when asked, `condense zoo`, `condense report` on every result JSON of the repository, and
readable report plots (one panel per dataset and protocol, at most 8 series, legends beside the axes)."""
import glob
import inspect
import json
import os
import pydoc

import numpy as np
import pytest
from PIL import Image

import condense
import condense.evaluation.plots as plots
from condense.cli import main
from condense.evaluation import EvalReport, ModelResult
from condense.grids import HEADER, PAD, cell_size, grid_rows
from condense.synth import distill

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_version_and_defaults_in_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"condense {condense.__version__}"
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: mnist5k)", "(default: 10)", "(default: ConvNet)", "(default: 0)", "(default: dm with --preset cpu"):
        assert shown in text, shown
    for method in ("dm", "mtt", "kip", "rded"):  # listed from the registry
        assert method in text
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "(default: standard)" in " ".join(capsys.readouterr().out.split())


def test_api_functions_show_their_real_signatures():
    for fn, names in ((condense.distill, ("method", "dataset", "ipc", "out", "resume")),
                      (condense.evaluate, ("synth", "models", "runs", "protocol"))):
        params = inspect.signature(fn).parameters
        assert all(n in params for n in names) and "args" not in params
        assert "*args" not in pydoc.render_doc(fn)


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("show")
    ipc1 = distill("random", "digits", 1, out=str(d / "ipc1.h5"), device="cpu")
    ipc3 = distill("random", "digits", 3, out=str(d / "ipc3.h5"), device="cpu")
    mf = distill("dm", "digits", 1, iterations=1, factor=2, model_args={"width": 8}, device="cpu",
                 out=str(d / "mf.h5"))
    return {"dir": d, "ipc1": ipc1, "ipc3": ipc3, "mf": mf}


def test_show_writes_a_grid_only_when_asked_sized_to_the_ipc(small_sets, tmp_path, capsys):
    d = small_sets["dir"]
    before = sorted(os.listdir(d))
    out = run(capsys, "show", d / "ipc1.h5")
    assert sorted(os.listdir(d)) == before and "--png" in out  # nothing written beside the set
    cell = cell_size(8)  # digits: 8 px upscaled to 64
    for name, cols in (("ipc1", 1), ("ipc3", 3)):
        png = tmp_path / f"{name}.png"
        run(capsys, "show", d / f"{name}.h5", "--png", png)
        img = Image.open(png)
        assert grid_rows(small_sets[name])[2:] == ([str(c) for c in range(10)], cols)  # class names, IPC columns
        assert img.size[1] == HEADER + 10 * (cell + PAD) + PAD and img.size[0] > cols * (cell + PAD)
    run(capsys, "show", d / "mf.h5", "--png", tmp_path / "mf.png")  # factor 2: stored and decoded grids
    assert grid_rows(small_sets["mf"])[3] == 1 and grid_rows(small_sets["mf"], decoded=True)[3] == 4
    assert os.path.isfile(tmp_path / "mf_decoded.png")


def test_zoo_lists_the_catalog_and_shows_an_entry(capsys):
    import json

    catalog = json.load(open(os.path.join(ROOT, "synth_sets", "catalog.json")))
    out = run(capsys, "zoo")
    for name, row in catalog.items():
        assert name in out and row["method"] in out
    name = sorted(catalog)[0]
    out = " ".join(run(capsys, "zoo", name).split())
    assert "condense distill" in out and "condense eval" in out and catalog[name]["protocol"] in out
    code = main(["zoo", "no_such_set"])
    assert code == 2 and "has no entry" in capsys.readouterr().err


def test_report_reads_the_catalog_and_every_result_json(tmp_path, capsys):
    files = [os.path.join(ROOT, "synth_sets", "catalog.json")] + sorted(
        glob.glob(os.path.join(ROOT, "eval", "compare", "*.json")) + glob.glob(os.path.join(ROOT, "eval", "bench",
                                                                                                "*.json")))
    run(capsys, "report", *files, "--out", tmp_path / "rep")
    text = open(tmp_path / "rep" / "README.md").read()
    assert "mnist5k_dm_ipc10.h5" in text and "Benchmark" in text and "dm --flip" in text
    catalog = json.load(open(files[0]))
    unevaluated = sorted(name for name, row in catalog.items() if "convnet" not in row)
    if unevaluated:  # the rows without an evaluation are listed, not silently left out
        assert f"not evaluated yet ({len(unevaluated)})" in text and f"| {unevaluated[0]} |" in text
    assert {"curves.png", "accuracy_vs_ipc.png"} <= set(os.listdir(tmp_path / "rep"))


def _report(method, ipc, protocol="fast", epochs=50, acc=50.0, runs=3, dataset="digits"):
    res = ModelResult(runs=[acc + i for i in range(runs)], curves=[[(epochs // 2, acc), (epochs, acc + 1)]] * runs,
                      loss_curves=[[(epochs // 2, 1.0), (epochs, 0.5)]] * runs, seeds=list(range(runs)))
    return EvalReport(set=f"{method}_{ipc}.h5", dataset=dataset, method=method, ipc=ipc, images=0, lr=0.01, seed=0,
                      seeds=list(range(runs)), protocol={"name": protocol, "hash": protocol[:4], "epochs": epochs},
                      results={"ConvNet": res})


def test_report_panels_hold_one_protocol_and_at_most_eight_series(tmp_path, monkeypatch):
    methods = [f"m{i}" for i in range(10)] + ["random"]
    reports = [_report(m, ipc) for m in methods for ipc in (1, 10)]
    reports += [_report(m, 10, "standard", 300) for m in methods[:3]] + [_report(m, 1, "standard", 300) for m in
                                                                         methods[:3]]
    points, panels = plots.ipc_panels(reports)
    assert all(len(methods_) <= plots.MAX_SERIES for _, methods_, _, _ in panels)
    fast = [p for p in panels if p[0][1] == "fast"]
    assert len(fast) == 2 and all("random" in p[1] for p in fast)  # 10 methods split evenly, the baseline in both
    assert {m for p in fast for m in p[1]} == set(methods)
    assert any(p[0][1] == "standard" for p in panels)  # never a 50- and a 300-epoch run in one panel
    rows = plots.curve_panels(reports)
    assert all(len(sets) <= plots.MAX_SERIES for _, sets, _, _ in rows)
    assert {key[2] for key, _, _, _ in rows} == {"fast", "standard"}
    # one IPC per method: no accuracy-vs-IPC plot at all
    assert plots.plot_accuracy_vs_ipc([_report("a", 10), _report("b", 10)], str(tmp_path / "x.png")) is None
    # integer epoch ticks, legends beside the axes
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: figures.append(fig) or path)
    plots.plot_curves(reports, str(tmp_path / "c.png"))
    plots.plot_accuracy_vs_ipc(reports, str(tmp_path / "a.png"))
    curve_axes, ipc_axes = figures[0].axes, [a for a in figures[1].axes if a.get_visible()]
    for ax in curve_axes:  # the epoch axis from 0, ticked at the checkpoints (25 and 50 of 50; 150 and 300 of 300)
        assert ax.get_xlim()[0] == 0 and list(ax.get_xticks()) in ([25, 50], [150, 300])
    for ax in ipc_axes + curve_axes[1::2]:
        legend = ax.get_legend()
        assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    monkeypatch.undo()
    plots.render_report([_report("a", 10, runs=1)], str(tmp_path / "one"), sources=["x"])
    assert not os.path.exists(tmp_path / "one" / "accuracy_vs_ipc.png")  # one point shows no trend
    text = open(tmp_path / "one" / "README.md").read()
    assert "50.00 (one run)" in text and "± 0.00" not in text and "Accuracy vs IPC" not in text


def test_report_draws_one_line_per_recipe_and_no_error_bar_for_one_run(tmp_path, monkeypatch):
    """Two dm recipes (the zoo's cifar10_dm_* and cifar10_dm_cpu_*) are two lines, never one line through both that
    jumps at the IPC they share; a method with one set per IPC stays one line under its name; equal points are
    nudged apart; a single run gets no error bar (its spread is unknown), several their std."""
    def named(set_name, method, ipc, acc):
        r = _report(method, ipc, acc=acc)
        r.set = set_name
        return r

    reports = [named("x_dm_ipc1.h5", "dm", 1, 30), named("x_dm_ipc10.h5", "dm", 10, 46),
               named("x_dm_cpu_ipc1.h5", "dm", 1, 37), named("x_dm_cpu_ipc10.h5", "dm", 10, 51),
               named("x_kmeans_ipc1.h5", "kmeans", 1, 30), named("x_kmeans_ipc10.h5", "kmeans", 10, 40)]
    points, panels = plots.ipc_panels(reports)
    (key, series, _, _), = panels
    assert series == ["dm (x_dm)", "dm (x_dm_cpu)", "kmeans"]
    assert sorted(p[0] for p in points[key]["dm (x_dm_cpu)"]) == [1, 10]
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: figures.append(fig) or path)
    plots.plot_accuracy_vs_ipc(reports, str(tmp_path / "a.png"))
    xs = [tuple(c.lines[0].get_xdata()) for c in figures[0].axes[0].containers]  # each series' data line
    assert len(xs) == 3 and len({x[0] for x in xs}) == 3  # the three IPC-1 points (two equal) side by side
    single, several = _report("a", 10, runs=1).results["ConvNet"], _report("b", 10).results["ConvNet"]
    assert np.isnan(plots.bar_error(single)) and plots.bar_error(several) == several.std


def test_the_main_job_is_dm_with_the_cpu_preset_and_stays_overridable(tmp_path, capsys):
    from condense.store import SynthSet
    fast = ["--dataset", "digits", "--ipc", "2", "--model-args", '{"width": 8}', "--device", "cpu", "--quiet"]
    run(capsys, "distill", *fast, "--iterations", "1", "--out", tmp_path / "main.h5")
    main_job = SynthSet.load(str(tmp_path / "main.h5"))
    assert main_job.method == "dm" and main_job.decoder == {"kind": "multi_formation", "factor": 2}
    run(capsys, "distill", "--method", "dm", *fast, "--iterations", "1", "--out", tmp_path / "plain.h5")
    assert SynthSet.load(str(tmp_path / "plain.h5")).decoder == {"kind": "identity"}  # the faithful port
    assert main(["distill", "--preset", "cpu", *fast]) == 2
    assert "--method" in capsys.readouterr().err
