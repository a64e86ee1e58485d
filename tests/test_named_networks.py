"""A KRR-ST set names its self-supervised target by checksum (condense.teachers.named): found in the teacher
folder wherever the file moved, a given file checked against it, older sets that stored a path still read, and a
missing or tampered target refused in one sentence (exit 2) that says how to rebuild it."""
import json
import os
import shutil

import h5py
import pytest
import torch

from condense.cli import main
from condense.errors import CondenseError
from condense.evaluation.transfer import Transfer, TransferConfig
from condense.models import create_model, read_network_info, save_network
from condense.store import SynthSet
from condense.synth import checkpoint_path, distill
from condense.teachers import CATALOG, find_network, load_teachers, write_catalog

SOURCE, TARGET = "digits@classes=0,1,2,3,4", "digits@classes=5,6,7,8,9"
NET = {"model": "ConvNetBN", "model_args": {"width": 8}}
KRR = {"iterations": 3, "pool": 1, "pool_age": 3, "batch_real": 64, "device": "cpu", **NET}
SSL_ARGS = ["--model-args", '{"width": 8}', "--epochs", "1", "--set", "proj_dim=16", "--set", "hidden=16"]
REBUILD = ("condense ssl --dataset digits@classes=0,1,2,3,4 --model ConvNetBN --model-args '{\"width\": 8}' "
           "--epochs 1 --set proj_dim=16 --set hidden=16 --out ")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A catalogued teacher folder holding one tiny SSL target trained by `condense ssl`, and a krr_st set made
    against it (the set file lives elsewhere)."""
    folder = str(tmp_path_factory.mktemp("teachers"))
    write_catalog(folder)  # an empty catalog: the folder is a catalogued one
    target = os.path.join(folder, "src_ssl.h5")
    assert main(["ssl", "--dataset", SOURCE, *SSL_ARGS, "--out", target, "--device", "cpu", "--quiet"]) == 0
    out = str(tmp_path_factory.mktemp("sets") / "krr.h5")
    distill("krr_st", SOURCE, 2, target=target, out=out, **KRR)
    return {"folder": folder, "target": target, "set": out, "checksum": read_network_info(target).checksum}


@pytest.fixture
def teachers(made, tmp_path, monkeypatch):
    """A private copy of the teacher folder, made $CONDENSE_TEACHERS (tests move and damage files in it)."""
    folder = str(tmp_path / "teachers")
    shutil.copytree(made["folder"], folder)
    monkeypatch.setenv("CONDENSE_TEACHERS", folder)
    return folder


def transfer_job(path, ssl=""):
    cfg = TransferConfig(targets=[TARGET], fractions=[0.1], modes=["linear"], runs=1, ssl=ssl, **NET)
    return Transfer(cfg, [(path, SynthSet.load(path))], torch.device("cpu"), lambda m: None)


def transfer_argv(path, *extra):
    return ["eval", path, "--transfer", TARGET, "--models", "ConvNetBN", "--model-args", '{"width": 8}', "--runs",
            "1", "--pretrain-epochs", "1", "--finetune-steps", "1", "--transfer-modes", "linear",
            "--label-fractions", "0.1", "--device", "cpu", "--quiet", *extra]


def test_the_set_names_its_target_by_checksum_and_the_catalog_lists_it(made):
    synth = SynthSet.load(made["set"])
    ref = synth.config["target"]
    assert ref["checksum"] == made["checksum"] and ref["file"] == "src_ssl.h5" and "path" not in ref
    assert (ref["role"], ref["architecture"], ref["dataset"]) == ("ssl", "BarlowTwins", SOURCE)
    assert ref["dataset_fingerprint"] == synth.dataset_fingerprint and ref["training"]["proj_dim"] == 16
    assert synth.config["method_config"]["target"] == made["checksum"]  # no path anywhere in the set
    assert made["folder"] not in json.dumps(synth.config)
    (row,) = json.load(open(os.path.join(made["folder"], CATALOG)))["teachers"]
    assert (row["file"], row["role"], row["checksum"]) == ("src_ssl.h5", "ssl", made["checksum"])
    assert row["knn1_accuracy"] is not None and row["num_classes"] is None


def test_a_teacher_folder_keeps_teachers_and_targets_apart(made, teachers):
    torch.manual_seed(0)
    net = create_model("ConvNetBN", 1, 5, (8, 8), width=8)
    save_network(os.path.join(teachers, "src_ConvNetBN_s0.h5"), net, architecture="ConvNetBN",
                 model_args={"width": 8}, channels=1, num_classes=5, image_size=(8, 8), role="teacher",
                 dataset=SOURCE, dataset_fingerprint=SynthSet.load(made["set"]).dataset_fingerprint)
    write_catalog(teachers)
    rows = json.load(open(os.path.join(teachers, CATALOG)))["teachers"]
    assert [(r["file"], r["role"]) for r in rows] == [("src_ConvNetBN_s0.h5", "teacher"), ("src_ssl.h5", "ssl")]
    data = SynthSet.load(made["set"])
    (only,) = load_teachers(teachers, dataset=SOURCE, fingerprint=data.dataset_fingerprint, num_classes=5,
                            image_shape=(1, 8, 8), device=torch.device("cpu"))
    assert only.info.role == "teacher"  # the SSL target is not a teacher


def test_the_target_is_found_by_checksum_after_a_move_or_rename(made, teachers):
    os.makedirs(os.path.join(teachers, "old"))
    moved = os.path.join(teachers, "renamed.h5")
    os.replace(os.path.join(teachers, "src_ssl.h5"), moved)
    job = transfer_job(made["set"])
    assert job.ssl_path == moved and job.ssl_note == f"the target network of {made['set']}"
    assert job.ssl_net is not None
    assert transfer_job(made["set"], ssl=moved).ssl_path == moved  # a given file that is the set's own


def test_krr_st_resumes_and_reruns_with_the_target_moved(made, teachers, tmp_path):
    """The resume key holds the checksum, not the path or file name; a re-run from the set's own config (as the
    membership audit does) finds the target by checksum."""
    out = str(tmp_path / "k.h5")

    def stop(done, _stats):
        if done == 2:
            raise KeyboardInterrupt

    first = os.path.join(teachers, "src_ssl.h5")
    with pytest.raises(KeyboardInterrupt):
        distill("krr_st", SOURCE, 2, target=first, out=out, on_step=stop, checkpoint_every=1, **KRR)
    moved = os.path.join(teachers, "moved.h5")
    os.replace(first, moved)
    resumed = distill("krr_st", SOURCE, 2, target=moved, out=out, resume=True, checkpoint_every=1, **KRR)
    straight = distill("krr_st", SOURCE, 2, target=made["checksum"], **KRR)
    assert torch.equal(resumed.images, straight.images) and torch.equal(resumed.labels, straight.labels)
    assert not os.path.exists(checkpoint_path(out))
    options = dict(SynthSet.load(made["set"]).config["method_config"])
    again = distill("krr_st", SOURCE, 2, device="cpu", **NET, **options)
    assert again.config["target"]["file"] == "moved.h5"


def test_an_older_set_with_a_path_is_still_read(made, teachers, tmp_path):
    synth = SynthSet.load(made["set"])
    elsewhere = str(tmp_path / "kept" / "ssl_old.h5")
    os.makedirs(os.path.dirname(elsewhere))
    shutil.move(os.path.join(teachers, "src_ssl.h5"), elsewhere)
    old = {k: v for k, v in synth.config["target"].items() if k not in ("file", "training")}
    old["path"] = elsewhere  # how sets stored it before: an absolute path
    assert find_network(old, where="the set", rebuild="-", give="-") == elsewhere
    shutil.move(elsewhere, os.path.join(teachers, "ssl_old.h5"))  # the path is gone: by checksum in the folder
    assert find_network(old, where="the set", rebuild="-", give="-") == os.path.join(teachers, "ssl_old.h5")
    again = distill("krr_st", SOURCE, 2, **{**KRR, "target": elsewhere})  # an older set's option: a path, gone
    assert again.config["target"]["file"] == "ssl_old.h5"


def one_sentence(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    return err


def test_a_missing_target_is_one_sentence_with_the_rebuild_command(made, teachers, capsys):
    os.remove(os.path.join(teachers, "src_ssl.h5"))
    err = one_sentence(capsys, transfer_argv(made["set"]), "which is not in")
    assert REBUILD + os.path.join(teachers, "src_ssl.h5") in err and "--ssl FILE" in err
    with pytest.raises(CondenseError, match="krr_st's option target names"):
        distill("krr_st", SOURCE, 2, target=made["checksum"], **KRR)


def test_a_tampered_or_foreign_target_is_one_sentence(made, teachers, capsys, tmp_path):
    path = os.path.join(teachers, "src_ssl.h5")
    other = str(tmp_path / "other.h5")
    shutil.copy(path, other)
    with h5py.File(other, "r+") as f:  # another network: same file, a new checksum recorded
        f.attrs["checksum"] = "0" * 64
    one_sentence(capsys, transfer_argv(made["set"], "--ssl", other), "is another one")
    with h5py.File(path, "r+") as f:  # tampered: the weights no longer match the recorded checksum
        weight = f["state/classifier.0.weight"]
        weight[0, 0] = weight[0, 0] + 1.0
    one_sentence(capsys, transfer_argv(made["set"]), "fails its checksum")


def test_a_rewritten_catalog_keeps_the_rows_of_absent_ssl_targets_but_not_of_absent_teachers(made, teachers):
    """SSL targets are not committed: a clone rewriting the teacher catalog keeps their rows; a teacher's row
    goes with its file."""
    torch.manual_seed(0)
    teacher = os.path.join(teachers, "src_ConvNetBN_s0.h5")
    save_network(teacher, create_model("ConvNetBN", 1, 5, (8, 8), width=8), architecture="ConvNetBN",
                 model_args={"width": 8}, channels=1, num_classes=5, image_size=(8, 8), role="teacher",
                 dataset=SOURCE, dataset_fingerprint=SynthSet.load(made["set"]).dataset_fingerprint)
    write_catalog(teachers)
    os.remove(os.path.join(teachers, "src_ssl.h5"))
    os.remove(teacher)
    write_catalog(teachers)
    rows = json.load(open(os.path.join(teachers, CATALOG)))["teachers"]
    assert [(r["file"], r["role"], r["checksum"]) for r in rows] == [("src_ssl.h5", "ssl", made["checksum"])]
