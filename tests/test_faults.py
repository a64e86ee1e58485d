"""Faults: a full disk, a read-only output folder, and kill -9 at chosen points of distill, experts and audit.

Whatever happens, no earlier result is lost, the failure is one sentence (or silence, for a kill), and
a resumed or repeated run completes; a resumed distillation equals an uninterrupted one bit for bit.
"""
import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys

import h5py
import pytest
import torch

import condense.io
from condense.experts import buffer
from condense.cli import main
from condense.io import staged_folder
from condense.synth import checkpoint_path
from test_bad_inputs import good_result

DISTILL = ["distill", "--dataset", "digits", "--ipc", "2", "--iterations", "6", "--checkpoint-every", "2",
           "--model-args", '{"width": 8}', "--device", "cpu", "--quiet"]
AUDIT = ["--checks", "memorization", "--set", "feature_epochs=0", "--set", 'feature_model_args={"width": 8}',
         "--set", "ssim_window=3", "--device", "cpu", "--quiet"]

# Runs the CLI with one function wrapped so that its N-th matching call kills the process (SIGKILL: no
# cleanup, no exit handlers), as a power cut or the OOM killer would.
KILLER = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
import condense.cli, condense.io, condense.synth.driver
where, nth, match = sys.argv[1], int(sys.argv[2]), sys.argv[3]
module, name = {"iteration": (condense.synth.driver, "seed_for"), "sync": (condense.io, "_sync"),
                "replace": (os, "replace")}[where]
real, calls = getattr(module, name), [0]
def wrapper(*args, **kwargs):
    if " ".join(map(str, args)).endswith(match):
        calls[0] += 1
        if calls[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(module, name, wrapper)
sys.exit(condense.cli.main(sys.argv[4:]))
"""


def killed(where, nth, match, argv):
    """Run ``condense argv`` until the ``nth`` call of ``where`` whose arguments end with ``match`` kills it."""
    done = subprocess.run([sys.executable, "-c", KILLER, where, str(nth), match, *argv], capture_output=True,
                          text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tree(folder):
    return {os.path.relpath(os.path.join(d, f), folder): digest(os.path.join(d, f))
            for d, _, files in os.walk(folder) for f in files}


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".tmp-")]


def one_sentence(code, err, needle):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and needle in err.lower(), err


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run every resumed one must equal: its images, labels and stored checksum."""
    out = str(tmp_path_factory.mktemp("straight") / "s.h5")
    assert main(DISTILL + ["--out", out]) == 0
    with h5py.File(out, "r") as f:
        return f["images"][()], f["labels"][()], f.attrs["checksum"]


def same_as_straight(out, straight):
    with h5py.File(out, "r") as f:
        assert (f["images"][()] == straight[0]).all() and (f["labels"][()] == straight[1]).all()
        assert f.attrs["checksum"] == straight[2]


# ---- disk full and read-only folders ------------------------------------------------------------
def test_disk_full_keeps_the_earlier_set(tmp_path):
    """A real size limit (RLIMIT_FSIZE) in a child process: the write fails, the earlier file stays."""
    out = str(tmp_path / "s.h5")
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--device", "cpu",
                 "--quiet", "--out", out]) == 0
    before = digest(out)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing it
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = subprocess.run([sys.executable, "-m", "condense.cli", "distill", "--method", "random", "--dataset",
                           "digits", "--ipc", "2", "--seed", "1", "--device", "cpu", "--quiet", "--out", out],
                          preexec_fn=limit, capture_output=True, text=True)
    one_sentence(done.returncode, done.stderr, "file too large")
    assert digest(out) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["show", "report", "checkpoint"])
def test_no_space_left_keeps_every_earlier_output(command, tmp_path, monkeypatch, capsys):
    """ENOSPC from the final fsync of any write (where a full disk often shows first): one sentence, exit 2."""
    s = str(tmp_path / "s.h5")
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--device", "cpu",
                 "--quiet", "--out", s]) == 0
    results = str(tmp_path / "r.json")
    json.dump(good_result(), open(results, "w"))
    argv, target = {"show": (["show", s, "--png", str(tmp_path / "g.png")], tmp_path / "g.png"),
                    "report": (["report", results, "--out", str(tmp_path / "rep")], tmp_path / "rep"),
                    "checkpoint": (DISTILL + ["--out", str(tmp_path / "d.h5"), "--iterations", "4"],
                                   tmp_path / "d.h5.ckpt.pt")}[command]
    if command == "checkpoint":  # an unfinished run whose checkpoint must survive the failed rewrite
        killed("iteration", 4, "", argv)
    else:
        assert main(argv) == 0
    before = tree(target) if os.path.isdir(target) else digest(target)
    capsys.readouterr()

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(condense.io, "_sync", full)
    code = main(argv + (["--resume"] if command == "checkpoint" else []))
    one_sentence(code, capsys.readouterr().err, "no space left on device")
    assert (tree(target) if os.path.isdir(target) else digest(target)) == before
    assert leftovers(tmp_path) == []


def test_read_only_output_folder_is_refused_before_any_work(tmp_path, shared_tmp, nobody, capsys):
    ro = os.path.join(shared_tmp, "readonly")
    os.makedirs(ro)
    os.chmod(ro, 0o555)
    s = os.path.join(shared_tmp, "s.h5")
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--device", "cpu",
                 "--quiet", "--out", s]) == 0
    capsys.readouterr()
    for argv in (["show", s, "--png", os.path.join(ro, "g.png")], DISTILL + ["--out", os.path.join(ro, "d.h5")],
                 ["audit", s, "--report", os.path.join(ro, "audit"), *AUDIT]):
        with nobody():
            code = main(argv)
        one_sentence(code, capsys.readouterr().err, "permission denied")
    assert os.listdir(ro) == []


# ---- kill -9 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where, nth, match, resumes_from", [
    ("iteration", 5, "", 4),           # mid-iteration: the 5th iteration had drawn its seed
    ("sync", 3, ".ckpt.pt", 2),        # mid-checkpoint write: the 3rd checkpoint (iteration 4) is on disk unsynced
    ("replace", 1, "/s.h5", 6),        # mid-final save: the set is written but not yet moved into place
])
def test_kill_9_then_resume_equals_an_uninterrupted_run(where, nth, match, resumes_from, tmp_path, straight, capsys):
    out = str(tmp_path / "s.h5")
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--device", "cpu",
                 "--quiet", "--out", out]) == 0  # an earlier result at the same path
    earlier = digest(out)
    killed(where, nth, match, DISTILL + ["--out", out])
    assert digest(out) == earlier  # nothing lost
    assert torch.load(checkpoint_path(out), weights_only=True)["iteration"] == resumes_from
    capsys.readouterr()
    assert main(DISTILL + ["--out", out]) == 2 and "unfinished run" in capsys.readouterr().err  # no silent reset
    assert main(DISTILL + ["--out", out, "--resume"]) == 0, capsys.readouterr().err
    same_as_straight(out, straight)
    assert not os.path.exists(checkpoint_path(out)) and leftovers(tmp_path) == []


def test_kill_9_during_experts_keeps_the_finished_ones(tmp_path, capsys):
    folder = str(tmp_path / "experts")
    argv = ["experts", "--dataset", "digits", "--experts", "3", "--epochs", "1", "--model-args", '{"width": 8}',
            "--device", "cpu", "--quiet", "--out", folder]
    killed("replace", 1, "expert_00001.h5", argv)  # expert 0 is done, expert 1 is written but not in place
    first = digest(os.path.join(folder, "expert_00000.h5"))
    assert sorted(os.listdir(folder)) != [] and "expert_00001.h5" not in os.listdir(folder)
    assert main(argv) == 0, capsys.readouterr().err
    assert digest(os.path.join(folder, "expert_00000.h5")) == first  # skipped, not retrained
    assert sorted(n for n in os.listdir(folder) if n.startswith("expert_")) == [f"expert_0000{i}.h5" for i in range(3)]
    assert leftovers(folder) == []


def test_a_failed_experts_run_does_not_poison_its_folder(tmp_path, monkeypatch, capsys):
    folder = str(tmp_path / "experts")
    argv = ["experts", "--dataset", "digits", "--experts", "1", "--epochs", "1", "--model-args", '{"width": 8}',
            "--device", "cpu", "--quiet", "--out", folder]

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(buffer, "train_expert", interrupted)
    assert main(argv + ["--lr", "0.5"]) == 130  # the manifest is written, no expert is
    monkeypatch.undo()
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err  # other settings: the expert-less folder is taken over
    assert os.path.exists(os.path.join(folder, "expert_00000.h5"))


def test_kill_9_during_audit_keeps_the_earlier_report(tmp_path, capsys):
    s = str(tmp_path / "s.h5")
    report = str(tmp_path / "audit")
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--device", "cpu",
                 "--quiet", "--out", s]) == 0
    assert main(["audit", s, "--report", report, *AUDIT]) == 0
    earlier = tree(report)
    killed("replace", 1, "audit.json", ["audit", s, "--report", report, "--seed", "1", *AUDIT])
    assert tree(report) == earlier and leftovers(tmp_path)  # the killed run's staging folder is left behind
    assert main(["audit", s, "--report", report, "--seed", "1", *AUDIT]) == 0, capsys.readouterr().err
    assert leftovers(tmp_path) == [] and tree(report) != earlier


def test_a_swap_killed_between_its_renames_gives_the_earlier_folder_back(tmp_path):
    final = tmp_path / "rep"
    final.mkdir()
    (final / "page.md").write_text("earlier")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    os.replace(final, tmp_path / f".tmp-{dead}-rep-abc.old")  # killed after the first rename
    with staged_folder(str(final)) as staging:
        assert (final / "page.md").read_text() == "earlier"  # put back before anything else happens
        open(os.path.join(staging, "page.md"), "w").write("new")
    assert (final / "page.md").read_text() == "new" and leftovers(tmp_path) == []


def test_a_failed_report_leaves_the_earlier_page_alone(tmp_path, capsys):
    good, bad = str(tmp_path / "good.json"), str(tmp_path / "bad.json")
    json.dump(good_result(), open(good, "w"))
    json.dump({**good_result(), "results": {"ConvNet": {"runs": [50.0], "curves": [[[1, "x"]]]}}}, open(bad, "w"))
    out = str(tmp_path / "rep")
    assert main(["report", good, "--out", out]) == 0
    earlier = tree(out)
    capsys.readouterr()
    one_sentence(main(["report", good, bad, "--out", out]), capsys.readouterr().err, "curves")
    assert tree(out) == earlier and leftovers(tmp_path) == []
