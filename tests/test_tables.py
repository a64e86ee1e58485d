"""Tables as a user reads them: one run shows its value alone (never "± 0.00"), in the terminal and in Markdown
alike; counts take correct plurals; piped output never wraps a row, and a title never folds to a narrow table."""
import io

from rich.console import Console

from condense.cli import main
from condense.evaluation import GridReport
from condense.evaluation.metrics import ranking
from condense.evaluation.tables import (PIPED_WIDTH, console, ior_cell, markdown, mean_std, plural, ranking_table,
                                        summary_cell, titled_table)
from condense.synth import distill

PROTOCOL = {"name": "fast", "hash": "abc123", "epochs": 1, "description": "x"}


def _grid(set_runs, random_runs):
    """A one-set grid whose ConvNet runs and IOR random subsets are the given accuracies."""
    n = len(set_runs)
    blob = {"dataset": "digits", "method": "dm", "ipc": 1, "protocol": PROTOCOL, "seeds": list(range(n)),
            "set": "dm.h5", "results": {"ConvNet": {"mean": sum(set_runs) / n, "std": 0.0, "runs": set_runs}},
            "ranking": {"ConvNet": ranking(set_runs, random_runs)}}
    return GridReport.from_json(blob)


def _text(renderable) -> str:
    out = Console(file=io.StringIO(), width=PIPED_WIDTH, highlight=False)
    out.print(renderable)
    return out.file.getvalue()


def test_mean_std_shows_one_run_alone_and_keeps_the_spread_of_several():
    assert mean_std(50.0, 0.0, 1) == "50.00"
    assert mean_std(50.0, 0.5, 3) == "50.00 ± 0.50"
    assert mean_std(50.0, 0.5, None) == "50.00 ± 0.50"  # an older record that does not say how many runs
    assert mean_std(1.234, 0.0, 1, "+.2f") == "+1.23"
    assert summary_cell({"mean": 40.0, "std": 0.0, "runs": [40.0]}) == "40.00"
    assert summary_cell({"mean": 40.0, "std": 1.0, "runs": [39.0, 41.0]}) == "40.00 ± 1.00"
    assert [plural(n, "seed") for n in (0, 1, 3)] == ["0 seeds", "1 seed", "3 seeds"]


def test_ior_of_one_run_has_no_spread_in_the_terminal_or_markdown():
    grid = _grid([50.0], [48.77])
    assert ior_cell(grid.sets[0].ranking["ConvNet"]) == "+1.23"
    for text in (_text(ranking_table(grid)), markdown(grid)):
        assert "+1.23" in text and "±" not in text
    assert "one seed" in markdown(grid) and "from one run (no spread)" in markdown(grid)
    assert "1 epoch)" in markdown(grid) and "1 epochs" not in markdown(grid)


def test_ior_of_three_runs_carries_its_std_in_the_terminal_and_markdown():
    grid = _grid([50.0, 52.0, 54.0], [49.0, 50.0, 51.0])  # paired differences 1, 2, 3: mean 2, std 0.82
    assert ior_cell(grid.sets[0].ranking["ConvNet"]) == "+2.00 ± 0.82"
    for text in (_text(ranking_table(grid)), markdown(grid)):
        assert "+2.00 ± 0.82" in text
    assert "over 3 seeds" in markdown(grid) and "over the 3 paired runs" in markdown(grid)


def test_a_title_stays_on_one_line_above_a_narrow_table():
    title = "Test accuracy (%), protocol 'standard' [24d13c9579af] (300 epochs), mean ± std over 3 seeds"
    table = titled_table(title)
    table.add_column("set")
    table.add_row("a.h5")
    assert title in _text(table)  # rich would fold it to the width of the one column
    narrow = Console(file=io.StringIO(), width=40)  # a terminal narrower than the title still wraps it
    narrow.print(table)
    assert max(map(len, narrow.file.getvalue().splitlines())) <= 40


def test_piped_console_is_unbounded_and_a_terminal_keeps_its_width(monkeypatch, capsys):
    assert console().width == PIPED_WIDTH  # capsys: stdout is not a tty
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert console().width == 100


def test_piped_eval_prints_each_row_on_one_line_and_no_spread_for_one_run(tmp_path, capsys):
    name = "digits_random_" + "a_rather_long_file_name_" * 6 + "ipc1.h5"  # a row wider than 160 columns
    path = tmp_path / name
    distill("random", "digits", 1, out=str(path), device="cpu")
    md = tmp_path / "eval.md"
    code = main(["eval", str(path), "--models", "ConvNet,MLP", "--model-args", '{"width": 8}', "--epochs", "1",
                 "--runs", "1", "--device", "cpu", "--quiet", "--markdown", str(md)])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if name in line]
    assert len(rows) == 3 and len(rows[0]) > 160  # the accuracy row and an IOR row per model, each whole
    assert any(line.strip().startswith("Test accuracy (%)") and line.rstrip().endswith("one seed")
               for line in out.splitlines())  # the title on one line
    assert "DD-Ranking metrics" in out and "±" not in out
    assert "±" not in md.read_text()
