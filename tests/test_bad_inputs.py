"""A corpus of bad inputs for every command: exit status 2, exactly one sentence on stderr, no traceback,
and no file created or changed, whatever the input (options, JSON values, protocol, set, checkpoint,
results and image files, output paths, permissions, environment). Run in-process through cli.main."""
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from condense.cli import main
from condense.data import load_dataset
from condense.models import create_model, save_network
from condense.store import SynthSet
from condense.synth import checkpoint_path, distill
from condense.checkpoint import payload_checksum as checkpoint_checksum

TINY = ["--dataset", "digits", "--ipc", "1", "--iterations", "1", "--model-args", '{"width": 8}', "--device", "cpu",
        "--quiet"]
RUN = {"model_args": {"width": 8}, "device": "cpu", "iterations": 2}  # the unfinished run's options


def distill_argv(*extra):
    return ["distill", *TINY, "--out", "@new", *extra]


def resume_argv(name):
    return ["distill", "--dataset", "digits", "--ipc", "1", "--iterations", "2", "--model-args", '{"width": 8}',
            "--device", "cpu", "--quiet", "--out", f"@{name}", "--resume"]


def eval_argv(*extra, target="@v"):
    return ["eval", target, "--epochs", "1", "--runs", "1", "--device", "cpu", "--quiet", *extra]


def audit_argv(*extra):
    return ["audit", "@v", "--device", "cpu", "--quiet", *extra]


def ssl_argv(*extra):
    return ["ssl", "--dataset", "digits", "--epochs", "1", "--model-args", '{"width": 8}', "--device", "cpu",
            "--quiet", "--out", "@new", *extra]


def teachers_argv(*extra):
    return ["teachers", "--dataset", "digits", "--models", "ConvNetBN", "--model-args", '{"width": 8}', "--epochs",
            "1", "--device", "cpu", "--quiet", "--out", "@tdir_new", *extra]


def mae_argv(*extra):
    return ["mae", "--dataset", "digits", "--epochs", "1", "--device", "cpu", "--quiet", "--out", "@new", *extra]


def dq_argv(*extra):  # no pixel quantisation and a random embedding network: refusals after the embedding stay quick
    return distill_argv("--method", "dq", "--set", "pixel=false", "--set", "embed_epochs=0", *extra)


def experts_argv(*extra):
    return ["experts", "--dataset", "digits", "--experts", "1", "--epochs", "1", "--model-args", '{"width": 8}',
            "--device", "cpu", "--quiet", "--out", "@exdir", *extra]


# (argv with @name for a prepared path, a fragment of the expected sentence[, environment])
CASES = [
    # datasets
    (["datasets", "--bogus"], "unrecognized arguments"),
    (["datasets", "extra"], "unrecognized arguments"),
    (["nosuchcommand"], "invalid choice"),
    # distill: outputs and run state
    (distill_argv("--out", "@dir"), "is a folder"),
    (["distill", *TINY, "--method", "herding", "--set", "feature_weights=@weights", "--out", "@weights"],
     "would overwrite an input"),
    (distill_argv("--out", "@ro/new.h5"), "permission denied", {"nobody": True}),
    (["distill", *TINY, "--out", "@run"], "holds an unfinished run"),
    (resume_argv("run")[:-1] + ["--resume", "--restart"], "give only one"),
    (resume_argv("nothing"), "Nothing to resume"),
    (resume_argv("flipped"), "fails its checksum"),
    (resume_argv("missing"), "lacks field 'images'"),
    (resume_argv("wrongtype"), "wrong-typed field 'iteration'"),
    (resume_argv("truncated"), "corrupt or truncated"),
    (resume_argv("oldformat"), "has format 1"),
    (resume_argv("locked"), "cannot be read: permission denied", {"nobody": True}),
    # distill: options, --set and --model-args values
    (distill_argv("--seed", str(2**63)), "--seed must be an integer in [0, 4294967295]"),
    (distill_argv("--seed", "-1"), "--seed must be an integer"),
    (distill_argv("--model-args", '{"width": "8"}'), "Model option 'width'"),
    (distill_argv("--model-args", "[8]"), "must be a JSON object"),
    (distill_argv("--set", 'lr_img="fast"'), "option 'lr_img' must be a finite number > 0"),
    (distill_argv("--set", "iterations=1.5"), "option 'iterations' must be an integer"),
    (distill_argv("--set", "batch_real=true"), "option 'batch_real' must be an integer"),
    (distill_argv("--lr-img", "0"), "option 'lr_img' must be a finite number > 0"),
    (distill_argv("--lr-img", "-1"), "option 'lr_img'"),
    (distill_argv("--lr-img", "nan"), "option 'lr_img'"),
    (distill_argv("--batch-real", "-5"), "option 'batch_real' must be an integer ≥ 1"),
    (distill_argv("--batch-real", "0"), "option 'batch_real'"),
    (distill_argv("--checkpoint-every", "-3"), "checkpoint_every must be an integer ≥ 0"),
    (distill_argv("--min-distance", "nan"), "option 'min_distance'"),
    (distill_argv("--min-distance", "inf"), "option 'min_distance'"),
    (distill_argv("--min-distance", "-1"), "option 'min_distance'"),
    (distill_argv("--set", "momentum=1.5"), "option 'momentum' must be a finite number in [0, 1)"),
    (distill_argv("--set", "dsa=1"), "option 'dsa' must be true or false"),
    (distill_argv("--set", 'flip="yes"'), "option 'flip' must be true or false"),
    (distill_argv("--set", "pool=-1"), "option 'pool'"),
    (distill_argv("--method", "dc", "--set", "outer_loop=0"), "option 'outer_loop'"),
    (distill_argv("--validation", "1.5"), "strictly between 0 and 1"),
    (distill_argv("--validation", "0"), "strictly between 0 and 1"),
    (distill_argv("--max-per-class", "0"), "max_per_class"),
    (distill_argv("--ipc", "0"), "IPC must be a positive"),
    (distill_argv("--iterations", "1.5"), "invalid int value"),
    (distill_argv("--device", "tpu"), "Unknown device 'tpu'"),
    (distill_argv("--method", "mtt", "--experts", "@dir"), "holds no experts"),
    (["distill", *TINY, "--dataset", "imagefolder:@fake_png", "--out", "@new"], "cannot decode"),
    (["distill", *TINY, "--dataset", "imagefolder:@cut_jpeg", "--out", "@new"], "cannot decode"),
    (distill_argv("--dataset", "digits@classes=ten"), "has no class 'ten'"),
    (distill_argv("--dataset", "digits@hue=2"), "unknown option 'hue'"),
    (distill_argv("--method", "krr_st"), "needs a self-supervised target network"),
    (distill_argv("--method", "krr_st", "--set", "target=@v"), "not a condense network file"),
    (distill_argv("--method", "krr_st", "--set", "pool_age=0"), "option 'pool_age'"),
    (distill_argv("--method", "kip", "--set", "depth=0"), "option 'depth'"),
    (distill_argv("--method", "rkip", "--set", "ridge=-1"), "option 'ridge'"),
    (distill_argv(), "WORLD_SIZE must be a whole number", {"WORLD_SIZE": "two"}),
    (distill_argv(), "WORLD_SIZE must be a whole number", {"WORLD_SIZE": "0"}),
    # eval: outputs, protocols, set files
    (eval_argv("--json", "@v"), "would overwrite an input"),
    (eval_argv("--markdown", "@v"), "would overwrite an input"),
    (eval_argv("--json", "@dir"), "is a folder"),
    (eval_argv("--json", "@ro/r.json", target="@open_v"), "permission denied", {"nobody": True}),
    (eval_argv("--runs", "0"), "--runs must be an integer in [1, 10000]"),
    (eval_argv("--runs", str(10**20)), "--runs must be an integer in [1, 10000]"),
    (eval_argv("--epochs", "0"), "option 'epochs' must be an integer ≥ 1"),
    (eval_argv("--seed", str(2**40)), "--seed must be an integer"),
    (eval_argv("--protocol", "@p_inf"), "option 'lr' must be a finite number > 0"),
    (eval_argv("--protocol", "@p_str"), "option 'epochs' must be an integer"),
    (eval_argv("--protocol", "@p_momentum"), "option 'momentum'"),
    (eval_argv("--protocol", "@p_teacher"), "teacher option 'lr'"),
    (eval_argv("--protocol", "@p_binary"), "not readable JSON"),
    (eval_argv("--protocol", "@p_list"), "must be a JSON object"),
    (eval_argv(target="@bad_seed"), "attribute 'seed'"),
    (eval_argv(target="@bad_classes"), "attribute 'num_classes'"),
    (eval_argv(target="@huge"), "declares 'images' of shape (3000, 1, 512, 512)"),
    (eval_argv(target="@truncated_set"), "not a readable HDF5 file"),
    (eval_argv(target="@locked_set"), "cannot be read: permission denied", {"nobody": True}),
    (eval_argv(target="@missing.h5"), "does not exist"),
    # eval: the kernel family (transfer, kernel regression)
    (eval_argv(target="@krr"), "evaluate it with --transfer"),
    (eval_argv("--kernel", "ntk", target="@krr"), "evaluate it with --transfer"),
    (eval_argv("--transfer", "mnist5k"), "has 1×28×28; use a view of the target"),
    (eval_argv("--transfer", "digits@classes=3,42"), "has no class '42'"),
    (eval_argv("--transfer", "digits@classes=3,4", "--label-fractions", "0"), "Label fractions"),
    (eval_argv("--transfer", "digits", "--ssl", "@missing.h5"), "does not exist"),
    (eval_argv("--transfer", "digits", "--ssl", "@v"), "not a condense network file"),
    # report: results files and the output folder
    (["report", "@r_list", "--out", "@rep"], "is not a `condense eval --json` result"),
    (["report", "@r_runs", "--out", "@rep"], "field 'runs'"),
    (["report", "@r_curves", "--out", "@rep"], "field 'curves'"),
    (["report", "@r_nohash", "--out", "@rep"], "protocol field 'hash'"),
    (["report", "@r_ipc", "--out", "@rep"], "is not a `condense eval --json` result"),
    (["report", "@r_empty", "--out", "@rep"], "has no results"),
    (["report", "@r_good", "--out", "@user"], "holds files this command did not write"),
    (["report", "@r_good", "--out", "@r_good"], "would overwrite an input"),
    (["report", "@r_good", "--out", "@v"], "is a file"),
    (["report", "@missing.json", "--out", "@rep"], "does not exist"),
    # audit: the report folder and check options
    (audit_argv("--report", "@v"), "would overwrite an input"),
    (audit_argv("--report", "@world"), "would overwrite an input"),
    (audit_argv("--report", "@user"), "holds files this command did not write"),
    (audit_argv("--set", "k=1.5"), "option 'k' must be an integer ≥ 2"),
    (audit_argv("--set", 'k="5"'), "option 'k' must be an integer"),
    (audit_argv("--set", "near_copy_ssim=NaN"), "option 'near_copy_ssim'"),
    (audit_argv("--set", "feature_model_args=3"), "option 'feature_model_args' must be a JSON object"),
    (audit_argv("--feature-weights", "@missing.pt"), "does not exist"),
    (audit_argv("--checks", "mia", "--shadows", "1"), "at least 2 shadow runs"),
    (audit_argv("--checks", "mia", "--set", "canaries=2.5"), "option 'canaries' must be an integer"),
    (audit_argv("--checks", "mia", "--set", "rmia_a=2"), "option 'rmia_a'"),
    (audit_argv("--checks", "reconstruction", "--set", "use_init=1"), "option 'use_init' must be true or false"),
    (audit_argv("--checks", "bogus"), "Unknown audit check 'bogus'"),
    (audit_argv("--seed", "-5"), "--seed must be an integer"),
    # show: outputs and set attributes of the wrong type
    (["show", "@v", "--png", "@v"], "would overwrite an input"),
    (["show", "@v", "--png", "@dir"], "is a folder"),
    (["show", "@open_v", "--png", "@ro/g.png"], "permission denied", {"nobody": True}),
    (["show", "@bad_names"], "attribute 'class_names'"),
    (["show", "@bad_config"], "attribute 'config'"),
    (["show", "@bad_versions"], "attribute 'versions'"),
    (["show", "@not_h5"], "not a readable HDF5 file"),
    (["show", "@locked_set"], "cannot be read: permission denied", {"nobody": True}),
    # ssl
    (ssl_argv("--epochs", "0"), "option 'epochs' must be an integer ≥ 1"),
    (ssl_argv("--set", "bogus=1"), "has no option 'bogus'"),
    (ssl_argv("--set", "crop_scale=0"), "option 'crop_scale'"),
    (ssl_argv("--resume"), "Nothing to resume"),
    (ssl_argv("--out", "@dir"), "is a folder"),
    (ssl_argv("--dataset", "digits@classes=11"), "has no class '11'"),
    # experts
    (experts_argv("--out", "@v"), "is a file"),
    (experts_argv("--lr", "nan"), "option 'lr' must be a finite number > 0"),
    (experts_argv("--lr", "0"), "option 'lr'"),
    (experts_argv("--batch-size", "0"), "option 'batch_size'"),
    (experts_argv("--epochs", "0"), "option 'epochs'"),
    (experts_argv("--experts", "0"), "number of experts"),
    (experts_argv("--style", "bogus"), "Unknown expert style 'bogus'"),
    (experts_argv("--max-per-class", "-1"), "option 'max_per_class'"),
    (experts_argv("--seed", str(2**33)), "--seed must be an integer"),
    (experts_argv("--model-args", '{"width": "8"}'), "Model option 'width'"),
    # teachers: training options and the output folder
    (teachers_argv("--epochs", "0"), "option 'epochs' must be an integer ≥ 1"),
    (teachers_argv("--lr", "nan"), "option 'lr' must be a finite number > 0"),
    (teachers_argv("--seeds", "0"), "option 'seeds' must be an integer ≥ 1"),
    (teachers_argv("--models", "Bogus"), "Unknown model 'Bogus'"),
    (teachers_argv("--max-per-class", "0"), "max-per-class"),
    (teachers_argv("--out", "@v"), "is a file"),
    (teachers_argv("--out", "@user"), "holds files this command did not write"),
    # the decoupled family: teachers a method cannot use, and its options
    (distill_argv("--method", "sre2l", "--teacher", "@t_other"), "was not trained on this run's data"),
    (distill_argv("--method", "sre2l", "--teacher", "@t_classes"), "predicts 3 classes but digits has 10"),
    (distill_argv("--method", "sre2l", "--teacher", "@t_nobn"), "sre2l matches the teacher's BatchNorm statistics"),
    (distill_argv("--method", "infer", "--teacher", "@t_nobn", "--set", "num_teachers=1"), "has no BatchNorm layer"),
    (distill_argv("--method", "sre2l", "--teacher", "@t_tampered"), "fails its checksum"),
    (distill_argv("--method", "sre2l", "--teacher", "@missing.h5"), "neither a network file nor a folder"),
    (distill_argv("--method", "rded", "--teacher", "@dir"), "holds no teacher for this data"),
    (distill_argv("--method", "infer", "--teacher", "@t_pair"), "leaves no natural image"),
    (distill_argv("--method", "infer", "--teacher", "@t_bn", "--set", "num_teachers=2"), "2 teachers are needed"),
    (distill_argv("--method", "sre2l", "--teacher", "@t_bn", "--set", 'labels="soft"'), "Unknown labels 'soft'"),
    (distill_argv("--method", "sre2l", "--teacher", "@t_bn", "--set", "beta1=1"), "option 'beta1'"),
    (distill_argv("--method", "rded", "--teacher", "@t_bn", "--set", "min_scale=0"), "option 'min_scale'"),
    (distill_argv("--method", "rded", "--teacher", "@t_bn", "--set", "mipc=0"), "option 'mipc'"),
    # soft-label evaluation: the teacher must fit the set, and a set that names its teacher takes no other
    (eval_argv("--protocol", "soft", "--teacher", "@t_other"), "was not trained on this run's data"),
    (eval_argv("--protocol", "soft", "--teacher", "@t_classes"), "predicts 3 classes"),
    (eval_argv("--protocol", "relabel", "--teacher", "@t_bn", target="@relabel_set"), "give the set's own teacher"),
    (eval_argv("--protocol", "relabel"), "names none; give --teacher"),
    (eval_argv("--protocol", "soft"), "has hard labels; give --teacher"),
    (eval_argv("--teacher", "@t_bn"), "protocol 'standard+epochs=1' trains on hard labels"),
    # export: what a format of labelled images cannot hold, and its output
    (["export", "@krr", "--format", "npz", "--out", "@new_npz"], "regression targets"),
    (["export", "@v", "--format", "imagefolder", "--pixels", "normalised", "--out", "@new_dir"], "8-bit pixels"),
    (["export", "@v", "--format", "pt", "--mean", "0.5", "--out", "@new_pt"], "go together"),
    (["export", "@v", "--format", "pt", "--mean", "0.5,0.5", "--std", "0.2,0.2", "--out", "@new_pt"],
     "one per channel"),
    (["export", "@v", "--format", "pt", "--mean", "half", "--std", "0.2", "--out", "@new_pt"], "comma-separated"),
    (["export", "@v", "--format", "npz", "--out", "@v"], "would overwrite an input"),
    (["export", "@v", "--format", "imagefolder", "--out", "@user"], "holds files this command did not write"),
    (["export", "@v", "--format", "pt", "--out", "@dir"], "is a folder"),
    (["export", "@v", "--format", "tiff", "--out", "@new_pt"], "invalid choice"),
    (["export", "@not_h5", "--format", "pt", "--out", "@new_pt"], "not a readable HDF5 file"),
    # import: files that are not what they claim, checked against the data, loaded without unpickling
    (["import", "@imp_dc", "--dataset", "mnist5k", "--out", "@new"], "but mnist5k has (1, 28, 28)"),
    (["import", "@imp_dc", "--dataset", "digits", "--pixels", "unit", "--out", "@new"], "--skip-stats-check"),
    (["import", "@imp_unit", "--dataset", "digits", "--out", "@new"], "give the normalisation it was saved with"),
    (["import", "@imp_dc", "--dataset", "digits", "--mean", "0.5,0.5,0.5", "--std", "1,1,1", "--out", "@new"],
     "needs 1 value(s)"),
    (["import", "@imp_dc", "--dataset", "digits", "--entry", "5", "--out", "@new"], "--entry 5 is not one of them"),
    (["import", "@imp_range", "--dataset", "digits", "--out", "@new"], "outside the 10 classes"),
    (["import", "@imp_count", "--dataset", "digits", "--out", "@new"], "labels of shape"),
    (["import", "@imp_pickle", "--dataset", "digits", "--out", "@new"], "weights_only=True"),
    (["import", "@imp_nodata", "--dataset", "digits", "--out", "@new"], "list of [images, labels] pairs"),
    (["import", "@imp_nan", "--dataset", "digits", "--out", "@new"], "NaN or infinite"),
    (["import", "@imp_objects.npz", "--dataset", "digits", "--out", "@new"], "allow_pickle=False"),
    (["import", "@imp_nolabels.npz", "--dataset", "digits", "--out", "@new"], "no array 'labels'"),
    (["import", "@imp_folder", "--dataset", "digits", "--out", "@new"], "neither a class of digits"),
    (["import", "@imp_mtt", "--dataset", "digits", "--syn-lr", "-1", "--out", "@new"], "learned step size"),
    (["import", "@imp_mtt", "--dataset", "digits", "--zca", "--pixels", "unit", "--out", "@new"], "--zca"),
    (["import", "@imp_dc", "--dataset", "digits", "--out", "@imp_dc"], "would overwrite an input"),
    (["import", "@missing.pt", "--dataset", "digits", "--out", "@new"], "does not exist"),
    (["import", "@imp_dc", "--dataset", "digits", "--layout", "npz", "--out", "@new"], "has no array 'images'"),
    (["import", "@imp_dc", "--dataset", "nosuchdata", "--out", "@new"], "Unknown dataset 'nosuchdata'"),
    # zoo and report: catalogs
    (["zoo", "nosuchset"], "has no entry 'nosuchset'"),
    (["zoo", "--catalog", "@r_good"], "is not a zoo catalog"),
    (["zoo", "--catalog", "@missing.json"], "does not exist"),
    (["zoo", "--catalog", "@bad_catalog"], "field 'ipc'"),
    (["report", "@bad_catalog", "--out", "@rep"], "field 'ipc'"),
    (["report", "@empty_teachers", "--out", "@rep"], "lists no teachers"),
    # portable data references: a folder of another machine, other data under the same name
    (eval_argv(target="@far_set"), "not on this machine"),
    (eval_argv(target="@alien_set"), "is not the data the set was made from"),
    (audit_argv()[:1] + ["@alien_set"] + audit_argv()[2:], "is not the data the set was made from"),
    # graphcut and dq: options, the masked autoencoder, bins of other data; `condense mae`
    (distill_argv("--method", "dq"), "fills the dropped patches with a masked autoencoder"),
    (distill_argv("--method", "dq", "--set", "mae=@v"), "not a condense network file"),
    (distill_argv("--method", "dq", "--set", "mae=@t_bn"), "not a masked autoencoder"),
    (distill_argv("--method", "dq", "--set", "mae=@missing.h5"), "does not exist"),
    (distill_argv("--method", "dq", "--set", "mae=@mae_rgb"), "takes 3×8×8 images but digits has 1×8×8"),
    (distill_argv("--method", "dq", "--set", "mask_ratio=1"), "option 'mask_ratio' must be a finite number in [0, 1)"),
    (distill_argv("--method", "dq", "--set", "ratio=1.5"), "option 'ratio'"),
    (distill_argv("--method", "dq", "--set", "num_bins=0"), "option 'num_bins'"),
    (distill_argv("--method", "dq", "--set", "pixel=1"), "option 'pixel' must be true or false"),
    (distill_argv("--method", "dq", "--set", 'saliency="cam"'), "Unknown saliency 'cam'"),
    (distill_argv("--method", "dq", "--set", 'fill="blur"'), "Unknown fill 'blur'"),
    (dq_argv("--set", 'greedy="fast"'), "Unknown greedy 'fast'"),
    (dq_argv("--set", "bins_file=@bins_other"), "not of this run's data"),
    (dq_argv("--set", "bins_file=@v"), "not a condense DQ bins file"),
    (dq_argv("--set", "bins_file=@missing.h5"), "does not exist"),
    (distill_argv("--method", "dq", "--model", "MLP", "--set", "embed_epochs=0", "--set", "fill=zero"),
     "no spatial feature map"),
    (distill_argv("--method", "graphcut", "--set", 'gradient="mse"'), "Unknown gradient 'mse'"),
    (distill_argv("--method", "graphcut", "--set", "lam=-1"), "option 'lam'"),
    (distill_argv("--method", "graphcut", "--set", "epsilon=0"), "option 'epsilon'"),
    (distill_argv("--method", "graphcut", "--teacher", "@t_other"), "was not trained on this run's data"),
    (mae_argv("--epochs", "0"), "option 'epochs' must be an integer ≥ 1"),
    (mae_argv("--set", "bogus=1"), "has no option 'bogus'"),
    (mae_argv("--set", "mask_ratio=0"), "option 'mask_ratio'"),
    (mae_argv("--set", "heads=3"), "heads 3 must divide dim 64"),
    (mae_argv("--set", "patch=3"), "patch 3 must divide the image sides 8×8"),
    (mae_argv("--resume"), "Nothing to resume"),
    (mae_argv("--out", "@dir"), "is a folder"),
    (mae_argv("--dataset", "digits@classes=11"), "has no class '11'"),
]


def _save_payload(path, payload, checksum=True):
    if checksum:
        payload["checksum"] = checkpoint_checksum(payload)
    torch.save(payload, path)


def _png_tree(root, fake: bytes = b"", name: str = ""):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            os.makedirs(os.path.join(root, split, c))
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
                    os.path.join(root, split, c, f"{i}.png"))
    if fake:
        open(os.path.join(root, "train", "a", name), "wb").write(fake)
    return root


def _edited_set(src, dst, **attrs):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs.update(attrs)
    return dst


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_tmp):
    """Every prepared input of the corpus, by name; `roots` are the folders no case may change."""
    d = str(tmp_path_factory.mktemp("world"))
    p = {"world": d, "dir": os.path.join(d, "adir"), "new": os.path.join(d, "new.h5"),
         "rep": os.path.join(d, "rep"), "exdir": os.path.join(d, "experts_new"), "user": os.path.join(d, "user"),
         "missing.h5": os.path.join(d, "missing.h5"), "missing.json": os.path.join(d, "missing.json"),
         "missing.pt": os.path.join(d, "missing.pt"), "ro": os.path.join(shared_tmp, "ro")}
    os.makedirs(p["dir"])
    os.makedirs(p["user"])
    open(os.path.join(p["user"], "notes.txt"), "w").write("mine")
    p["v"] = distill("random", "digits", 2, out=os.path.join(d, "v.h5"), device="cpu") and os.path.join(d, "v.h5")
    p["krr"] = SynthSet(images=torch.zeros(4, 1, 8, 8), labels=torch.zeros(4, 3), dataset="digits", num_classes=10,
                        class_names=[str(c) for c in range(10)], mean=(0.3,), std=(0.4,), method="krr_st",
                        label_kind="regression").save(os.path.join(d, "krr.h5"))  # a set of regression targets
    p["weights"] = os.path.join(d, "w.pt")
    torch.save(create_model("ConvNet", 1, 10, (8, 8), width=8).state_dict(), p["weights"])

    # an unfinished run, and damaged copies of its checkpoint
    p["run"] = os.path.join(d, "run.h5")

    def stop(done, stats):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill("dm", "digits", 1, out=p["run"], checkpoint_every=1, on_step=stop, **RUN)
    ckpt = open(checkpoint_path(p["run"]), "rb").read()
    payload = torch.load(checkpoint_path(p["run"]), weights_only=True)
    for name in ("nothing", "flipped", "missing", "wrongtype", "truncated", "oldformat"):
        p[name] = os.path.join(d, f"{name}.h5")
    image_bytes = payload["images"].numpy().tobytes()
    at = ckpt.find(image_bytes)
    assert at > 0 and len(image_bytes) >= 100
    flipped = bytearray(ckpt)
    for i in range(at, at + 100):
        flipped[i] ^= 0xFF
    open(checkpoint_path(p["flipped"]), "wb").write(bytes(flipped))
    _save_payload(checkpoint_path(p["missing"]), {k: v for k, v in payload.items() if k != "images"})
    _save_payload(checkpoint_path(p["wrongtype"]), {**payload, "iteration": "1"})
    open(checkpoint_path(p["truncated"]), "wb").write(ckpt[: len(ckpt) // 2])
    old = {k: v for k, v in payload.items() if k != "checksum"} | {"format": 1}
    _save_payload(checkpoint_path(p["oldformat"]), old, checksum=False)

    # set files with attributes of the wrong type, forged, truncated, not HDF5
    p["bad_seed"] = _edited_set(p["v"], os.path.join(d, "bad_seed.h5"), seed="seven")
    p["bad_classes"] = _edited_set(p["v"], os.path.join(d, "bad_classes.h5"), num_classes=10.0)
    p["bad_names"] = _edited_set(p["v"], os.path.join(d, "bad_names.h5"), class_names='{"a": 1}')
    p["bad_config"] = _edited_set(p["v"], os.path.join(d, "bad_config.h5"), config="[1, 2]")
    p["bad_versions"] = _edited_set(p["v"], os.path.join(d, "bad_versions.h5"), versions='{"torch": 2}')
    p["huge"] = os.path.join(d, "huge.h5")
    make_huge(p["v"], p["huge"])
    p["truncated_set"] = os.path.join(d, "truncated_set.h5")
    open(p["truncated_set"], "wb").write(open(p["v"], "rb").read()[:2000])
    p["not_h5"] = os.path.join(d, "not.h5")
    open(p["not_h5"], "w").write("plain text\n")

    # protocol and results files
    for name, text in {"p_inf": '{"lr": Infinity}', "p_str": '{"epochs": "3"}', "p_momentum": '{"momentum": "0.9"}',
                       "p_teacher": '{"labels": "teacher", "teacher": {"lr": -1}}', "p_list": "[1, 2]"}.items():
        p[name] = os.path.join(d, f"{name}.json")
        open(p[name], "w").write(text)
    p["p_binary"] = os.path.join(d, "p_binary.json")
    open(p["p_binary"], "wb").write(b"\xff\xfe\x00binary")
    good = good_result()
    for name, blob in {"r_good": good, "r_list": [1, 2], "r_runs": {**good, "results": {"ConvNet": {"runs": ["a"]}}},
                       "r_curves": {**good, "results": {"ConvNet": {"runs": [1.0], "curves": [["ab"]]}}},
                       "r_nohash": {**good, "protocol": {"name": "fast"}}, "r_ipc": {**good, "ipc": "two"},
                       "r_empty": {**good, "results": {}}}.items():
        p[name] = os.path.join(d, f"{name}.json")
        json.dump(blob, open(p[name], "w"))

    # teachers (untrained: the checks read metadata and checksums) and a set that names another teacher
    fingerprint = load_dataset("digits").fingerprint()
    p["t_pair"] = os.path.join(d, "t_pair")
    for name, folder, model, classes, fp in (("t_bn", "t_pair", "ConvNetBN", 10, fingerprint),
                                             ("t_bn2", "t_pair", "ConvNetBN", 10, fingerprint),
                                             ("t_nobn", "", "ConvNet", 10, fingerprint),
                                             ("t_other", "", "ConvNetBN", 10, "deadbeefdeadbeef"),
                                             ("t_classes", "", "ConvNetBN", 3, fingerprint)):
        torch.manual_seed(len(name))
        p[name] = save_network(os.path.join(d, folder, f"{name}.h5"), create_model(model, 1, classes, (8, 8), width=8),
                               architecture=model, model_args={"width": 8}, channels=1, num_classes=classes,
                               image_size=(8, 8), role="teacher", dataset="digits", dataset_fingerprint=fp)
    p["t_tampered"] = os.path.join(d, "t_tampered.h5")
    shutil.copy(p["t_bn"], p["t_tampered"])
    with h5py.File(p["t_tampered"], "r+") as f:
        f["state/classifier.bias"][0] += 1.0
    relabelled = SynthSet.load(p["v"])
    relabelled.label_kind, relabelled.relabel_network = "relabel", {"architecture": "ConvNetBN", "checksum": "0" * 64}
    p["relabel_set"] = relabelled.save(os.path.join(d, "relabel_set.h5"))
    p["tdir_new"] = os.path.join(d, "teachers_new")

    # image folders with a non-image named .png and a truncated JPEG
    p["fake_png"] = _png_tree(os.path.join(d, "fake_png"), b"not an image", "fake.png")
    from PIL import Image
    jpeg = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(jpeg, "JPEG")
    p["cut_jpeg"] = _png_tree(os.path.join(d, "cut_jpeg"), jpeg.getvalue()[:150], "cut.jpg")

    # permissions: a read-only folder, an unreadable set and checkpoint (in folders every user can enter)
    os.makedirs(p["ro"])
    os.makedirs(os.path.join(shared_tmp, "rw"))
    os.chmod(os.path.join(shared_tmp, "rw"), 0o777)
    p["locked_set"] = os.path.join(shared_tmp, "locked.h5")
    shutil.copy(p["v"], p["locked_set"])
    p["locked"] = os.path.join(shared_tmp, "rw", "locked_run.h5")
    open(checkpoint_path(p["locked"]), "wb").write(ckpt)
    p["open_v"] = os.path.join(shared_tmp, "v.h5")
    shutil.copy(p["v"], p["open_v"])
    for path in (p["locked_set"], checkpoint_path(p["locked"])):
        os.chmod(path, 0)
    os.chmod(p["ro"], 0o555)
    _import_inputs(p, d)
    _dq_inputs(p, d)
    return {"paths": p, "roots": [d, shared_tmp]}


def _dq_inputs(p, d):
    """A masked autoencoder for other images, and DQ bins of other data."""
    from condense.synth.bins import Bins, save_bins

    p["mae_rgb"] = save_network(os.path.join(d, "mae_rgb.h5"), create_model("MAE", 3, 1, (8, 8), dim=8, heads=2,
                                                                             decoder_dim=8), architecture="MAE",
                                model_args={"dim": 8, "heads": 2, "decoder_dim": 8}, channels=3, num_classes=1,
                                image_size=(8, 8), role="autoencoder", dataset="digits")
    rows = len(load_dataset("digits").train_y)
    p["bins_other"] = save_bins(os.path.join(d, "bins_other.h5"), Bins(
        torch.zeros(rows, dtype=torch.long), torch.arange(rows), {"dataset_fingerprint": "deadbeefdeadbeef"}))


def _import_inputs(p, d):
    """Files `condense import` must refuse (official layouts gone wrong), catalogs, and sets whose data is elsewhere."""
    data = load_dataset("digits")
    x, y = data.train_x[:20].clone(), data.train_y[:20].clone()
    for name in ("new_npz", "new_pt"):
        p[name] = os.path.join(d, f"{name}.{name[4:]}")
    p["new_dir"] = os.path.join(d, "new_dir")
    blobs = {"imp_dc": {"data": [[x, y]], "accs_all_exps": {"ConvNet": [np.float64(0.5)]}},
             "imp_unit": {"data": [[data.denormalize(x), y]]}, "imp_range": {"data": [[x, y + 10]]},
             "imp_count": {"data": [[x, y[:7]]]}, "imp_nodata": {"images": x},
             "imp_nan": {"data": [[x.masked_fill(x > 1, float("nan")), y]]},
             "imp_pickle": {"data": [[x, y]], "hook": os.getcwd}}  # a pickled callable: never loaded
    for name, blob in blobs.items():
        p[name] = os.path.join(d, f"{name}.pt")
        torch.save(blob, p[name])
    p["imp_objects.npz"] = os.path.join(d, "imp_objects.npz")
    np.savez(p["imp_objects.npz"], images=np.array([{"a": 1}], dtype=object), labels=np.arange(1))
    p["imp_nolabels.npz"] = os.path.join(d, "imp_nolabels.npz")
    np.savez(p["imp_nolabels.npz"], images=x.numpy())
    p["imp_folder"] = _png_tree(os.path.join(d, "imp_folder"))  # classes 'a' and 'b' are not digits' classes
    shutil.rmtree(os.path.join(p["imp_folder"], "test"))
    p["imp_folder"] = os.path.join(p["imp_folder"], "train")
    p["imp_mtt"] = os.path.join(d, "imp_mtt")
    os.makedirs(p["imp_mtt"])
    torch.save(x, os.path.join(p["imp_mtt"], "images_best.pt"))
    torch.save(y, os.path.join(p["imp_mtt"], "labels_best.pt"))
    catalog = {"a": {"method": "dm", "dataset": "digits", "ipc": "ten", "bytes": 1, "command": "x", "budget": {}}}
    for name, blob in {"bad_catalog": catalog, "empty_teachers": {"teachers": []}}.items():
        p[name] = os.path.join(d, f"{name}.json")
        json.dump(blob, open(p[name], "w"))
    far, alien = SynthSet.load(p["v"]), SynthSet.load(p["v"])
    far.dataset = "imagefolder:/nonexistent/machine/cifar10-jpeg"
    alien.dataset_fingerprint = "deadbeefdeadbeef"
    p["far_set"] = far.save(os.path.join(d, "far_set.h5"))
    p["alien_set"] = alien.save(os.path.join(d, "alien_set.h5"))


def good_result():
    return {"set": "v.h5", "dataset": "digits", "method": "random", "ipc": 2, "images": 20, "lr": 0.01, "seed": 0,
            "seeds": [0], "protocol": {"name": "fast", "hash": "0123456789ab", "epochs": 1},
            "results": {"ConvNet": {"runs": [50.0], "curves": [[[1, 50.0]]], "loss_curves": [[[1, 1.0]]],
                                    "seconds": [1.0], "seeds": [0]}}}


def make_huge(src, path):
    """A small file declaring a 3 GB image array (none of it stored)."""
    with h5py.File(src, "r") as s, h5py.File(path, "w") as f:
        f.attrs.update(s.attrs)
        f.attrs["image_shape"] = "[1, 512, 512]"
        f.create_dataset("images", shape=(3000, 1, 512, 512), dtype="float32")
        f.create_dataset("labels", data=np.arange(3000, dtype=np.int64) % 10)
        f.create_group("decoder")


def snapshot(roots):
    """Every file and folder under ``roots`` with its content hash and mtime."""
    seen = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            seen[folder] = "dir"
            for name in files:
                path = os.path.join(folder, name)
                try:
                    data = open(path, "rb").read()
                except PermissionError:
                    data = b""
                seen[path] = (hashlib.sha256(data).hexdigest(), os.stat(path).st_mtime_ns)
    return seen


def _ids(case):
    return " ".join(case[0])[:80]


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_bad_input_is_one_sentence_and_changes_nothing(case, world, capsys, monkeypatch, nobody, tmp_path):
    argv, needle, env = case[0], case[1], dict(case[2]) if len(case) > 2 else {}
    as_nobody = env.pop("nobody", False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    # @name is a prepared path; other '@'s are dataset views (digits@classes=...)
    argv = [re.sub(r"@([\w.]+)", lambda m: world["paths"].get(m.group(1), m.group(0)), a) for a in argv]
    before = snapshot(world["roots"])
    if as_nobody:
        with nobody():
            code = main(argv)
    else:
        code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle.lower() in err.lower(), err
    assert snapshot(world["roots"]) == before


def test_the_corpus_covers_every_command_and_is_large():
    commands = {c[0][0] for c in CASES}
    assert {"datasets", "distill", "eval", "report", "audit", "show", "experts", "ssl", "teachers", "export", "import",
            "zoo"} <= commands
    assert len(CASES) >= 50


def test_corrupt_caches_are_rebuilt_not_fatal(tmp_path, monkeypatch, capsys):
    """Caches are ours, not the user's input: a corrupt imagefolder cache is decoded again."""
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    tree = _png_tree(str(tmp_path / "tree"))
    argv = ["distill", "--method", "random", "--dataset", f"imagefolder:{tree}", "--ipc", "1", "--device", "cpu",
            "--quiet", "--out", str(tmp_path / "a.h5")]
    assert main(argv) == 0
    (cached,) = os.listdir(tmp_path / "cache")
    open(tmp_path / "cache" / cached, "wb").write(b"PK\x03\x04 not a zip")
    assert main(argv[:-1] + [str(tmp_path / "b.h5")]) == 0, capsys.readouterr().err
    with np.load(tmp_path / "cache" / cached) as z:  # rewritten whole
        assert z["xtr"].shape == (4, 8, 8, 1)


def test_restart_discards_the_unfinished_run(tmp_path, capsys):
    out = str(tmp_path / "r.h5")

    def stop(done, stats):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill("dm", "digits", 1, out=out, checkpoint_every=1, on_step=stop, **RUN)
    argv = ["distill", "--dataset", "digits", "--ipc", "1", "--iterations", "2", "--model-args", '{"width": 8}',
            "--device", "cpu", "--quiet", "--out", out, "--lr-img", "0.5"]
    assert main(argv) == 2 and "unfinished run" in capsys.readouterr().err
    assert main(argv + ["--restart"]) == 0, capsys.readouterr().err
    assert os.path.exists(out) and not os.path.exists(checkpoint_path(out))


def test_refusing_an_oversized_set_costs_kilobytes(tmp_path, tiny_set):
    """The forged file declares 3 GB; refusing it must read metadata only (peak RSS measured in a child)."""
    good = tiny_set.save(str(tmp_path / "good.h5"))
    huge = str(tmp_path / "huge.h5")
    with h5py.File(good, "r") as s, h5py.File(huge, "w") as f:
        f.attrs.update(s.attrs)
        f.attrs["image_shape"] = "[1, 512, 512]"
        f.create_dataset("images", shape=(3000, 1, 512, 512), dtype="float32")
        f.create_dataset("labels", data=np.arange(3000, dtype=np.int64) % 3)
        f.create_group("decoder")
    probe = ("import resource, sys\n"
             "from condense.errors import CondenseError\n"
             "from condense.store import SynthSet\n"
             "SynthSet.load(sys.argv[2])\n"  # warm up every code path on a good file first
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "try:\n    SynthSet.load(sys.argv[1])\nexcept CondenseError as e:\n    print(str(e).splitlines()[0])\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    done = subprocess.run([sys.executable, "-c", probe, huge, good], capture_output=True, text=True)
    sentence, grown_kb = done.stdout.strip().splitlines()
    assert "declares 'images'" in sentence, done.stderr
    assert int(grown_kb) < 2048, f"peak RSS grew {grown_kb} kB to refuse the file"  # 3 GB if it were read


def test_corrupt_teacher_and_shadow_caches_are_rebuilt(tmp_path, monkeypatch):
    from condense.audit.mia import _load_or_run
    from condense.data import load_dataset
    from condense.evaluation import TeacherSpec
    from condense.evaluation.teachers import get_teacher
    from condense.models import read_network_info

    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    spec, data = TeacherSpec(model_args={"width": 8}, epochs=1), load_dataset("digits", device="cpu")
    first = get_teacher(spec, data)[1]
    open(first["cache"], "wb").write(open(first["cache"], "rb").read()[:500])  # truncated
    again = get_teacher(spec, data)[1]
    assert again["test_accuracy"] == first["test_accuracy"]  # retrained (same seed) and cached again
    assert read_network_info(first["cache"]).metrics["test_accuracy"] == first["test_accuracy"]  # rewritten whole
    shadow = str(tmp_path / "shadow.npz")
    open(shadow, "wb").write(b"not a zip")
    assert _load_or_run(shadow, lambda: {"a": np.arange(3)})["a"].tolist() == [0, 1, 2]
    with np.load(shadow) as z:
        assert z["a"].tolist() == [0, 1, 2]


def test_library_warnings_never_reach_stderr(world, tmp_path, capsys, monkeypatch):
    import warnings
    import condense.cli as cli
    from condense.errors import CondenseError

    real = cli.save_grid

    def noisy(*args, **kwargs):
        warnings.warn("a library's deprecation notice", FutureWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "save_grid", noisy)
    assert main(["show", world["paths"]["v"], "--png", str(tmp_path / "g.png")]) == 0
    assert capsys.readouterr().err == ""

    def noisy_failure(*args, **kwargs):
        warnings.warn("a library's deprecation notice", FutureWarning)
        raise CondenseError("The grid cannot be drawn.")

    monkeypatch.setattr(cli, "save_grid", noisy_failure)
    assert main(["show", world["paths"]["v"], "--png", str(tmp_path / "h.png")]) == 2
    assert capsys.readouterr().err.strip() == "condense: The grid cannot be drawn."
