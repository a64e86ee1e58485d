"""Every listed bad input: exit status 2, one sentence on stderr, no traceback."""
import subprocess
import sys

import h5py
import numpy as np
import pytest

import condense.cli as cli
from condense.cli import main
from condense.store import checksum as _checksum

FAST = ["--model-args", '{"width": 8}', "--device", "cpu", "--quiet"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_sentence(code, err, *needles):
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in err.lower(), err


@pytest.fixture
def good_set(tmp_path, capsys):
    out = str(tmp_path / "ok.h5")
    code, _, err = run_cli(capsys, "distill", "--method", "random", "--dataset", "digits", "--ipc", "2",
                           "--out", out, *FAST)
    assert code == 0, err
    return out


@pytest.mark.parametrize("argv, needles", [
    (["distill", "--dataset", "cifar10", "--data-root", "/nonexistent/x"], ["cifar10", "/nonexistent/x"]),
    (["distill", "--dataset", "cifar10"], ["--data-root"]),
    (["distill", "--dataset", "nosuchset"], ["Unknown dataset 'nosuchset'"]),
    (["distill", "--dataset", "digits", "--method", "nosuchmethod"], ["Unknown method 'nosuchmethod'"]),
    (["distill", "--dataset", "digits", "--model", "NoSuchNet"], ["Unknown model 'NoSuchNet'"]),
    (["distill", "--dataset", "digits", "--ipc", "1000"], ["IPC 1000", "smallest class"]),
    (["distill", "--dataset", "digits", "--iterations", "0"], ["Iterations must be a positive"]),
    (["distill", "--dataset", "digits", "--iterations", "-3"], ["Iterations must be a positive"]),
    (["distill", "--dataset", "digits", "--ipc", "0"], ["IPC must be a positive"]),
    (["distill", "--dataset", "digits", "--method", "random", "--flip"], ["--flip is not supported"]),
    (["distill", "--dataset", "digits", "--ipc", "ten"], ["invalid int value"]),
    (["distill", "--dataset", "digits", "--set", "no_such_option=1"], ["has no option 'no_such_option'"]),
    (["distill", "--dataset", "digits", "--set", "lr_img"], ["--set expects KEY=VALUE"]),
    (["eval", "/nonexistent/set.h5"], ["does not exist"]),
    (["show", "/nonexistent/set.h5"], ["does not exist"]),
    (["nosuchcommand"], ["invalid choice"]),
])
def test_bad_input_exits_2_with_one_sentence(capsys, argv, needles):
    extra = FAST if argv[0] == "distill" else []
    code, _, err = run_cli(capsys, *argv, *extra)
    assert_one_sentence(code, err, *needles)


def test_corrupt_set(tmp_path, capsys, good_set):
    data = open(good_set, "rb").read()
    open(good_set, "wb").write(data[: len(data) // 3])
    for command in ("eval", "show"):
        code, _, err = run_cli(capsys, command, good_set)
        assert_one_sentence(code, err, "corrupt or truncated")


def test_nan_pixels_in_a_set(capsys, good_set):
    with h5py.File(good_set, "r+") as f:
        images = f["images"][()]
        images[0, 0, 0, 0] = np.nan
        f["images"][...] = images
        f.attrs["checksum"] = _checksum({"images": images, "labels": f["labels"][()]})
    code, _, err = run_cli(capsys, "eval", good_set, "--epochs", "1", "--runs", "1")
    assert_one_sentence(code, err, "NaN")


def test_eval_unknown_model(capsys, good_set):
    code, _, err = run_cli(capsys, "eval", good_set, "--models", "ConvNet,NoSuchNet", "--epochs", "1")
    assert_one_sentence(code, err, "Unknown model 'NoSuchNet'")


def test_eval_show_and_json(tmp_path, capsys, good_set):
    js = str(tmp_path / "r.json")
    code, out, err = run_cli(capsys, "eval", good_set, "--epochs", "2", "--runs", "2", "--json", js, "--device", "cpu")
    assert code == 0, err
    import json
    report = json.load(open(js))
    conv = report["results"]["ConvNet"]
    assert len(conv["runs"]) == 2 and 0 <= conv["mean"] <= 100 and report["protocol"]["epochs"] == 2
    assert "ConvNet" in out
    code, out, err = run_cli(capsys, "show", good_set, "--png", str(tmp_path / "g.png"))
    assert code == 0 and (tmp_path / "g.png").exists() and "random" in out


def test_console_script_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "condense.cli", "distill", "--dataset", "nosuchset"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr


def test_set_passes_method_options_into_the_stored_config(tmp_path, capsys):
    out = str(tmp_path / "s.h5")
    code, _, err = run_cli(capsys, "distill", "--dataset", "digits", "--ipc", "1", "--iterations", "2",
                           "--set", "batch_real=8", "--set", "init=noise", "--out", out, *FAST)
    assert code == 0, err
    from condense.store import SynthSet
    cfg = SynthSet.load(out).config["method_config"]
    assert cfg["batch_real"] == 8 and cfg["init"] == "noise" and cfg["iterations"] == 2


# ---- --model-args: malformed or mistyped JSON, for every command that takes it -----------------
MODEL_ARGS_COMMANDS = {  # {out}: a folder that must not appear
    "distill": ["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--iterations", "1", "--out", "{out}"],
    "eval": ["eval", "/nonexistent/set.h5", "--epochs", "1", "--runs", "1", "--json", "{out}"],
    "experts": ["experts", "--dataset", "digits", "--experts", "1", "--epochs", "1", "--out", "{out}"],
}


@pytest.mark.parametrize("value, needles", [
    ("{bad json", ["--model-args", "not valid JSON"]),
    ('{"width": 8', ["--model-args", "not valid JSON"]),
    ("[1, 2]", ["--model-args", "must be a JSON object", "[1, 2]"]),
    ("3", ["--model-args", "must be a JSON object"]),
    ('"width"', ["--model-args", "must be a JSON object"]),
    ("null", ["--model-args", "must be a JSON object"]),
])
@pytest.mark.parametrize("command", sorted(MODEL_ARGS_COMMANDS))
def test_bad_model_args_is_one_sentence_before_any_work(capsys, monkeypatch, tmp_path, command, value, needles):
    def must_not_run(*args, **kwargs):
        raise AssertionError("work started before --model-args was checked")

    for name in ("distill", "run_grid", "train_buffer"):
        monkeypatch.setattr(cli, name, must_not_run)
    argv = [a.format(out=tmp_path / "out") for a in MODEL_ARGS_COMMANDS[command]]
    code, stdout, err = run_cli(capsys, *argv, "--model-args", value, "--device", "cpu", "--quiet")
    assert_one_sentence(code, err, *needles)
    assert stdout == "" and list(tmp_path.iterdir()) == []
