"""Rewrite the dataset reference of SynthSet files (the dataset name and the data fingerprint) and nothing else:
every array and every other attribute stay as they are (a reference script, not library code).

    python scripts/migrate_dataset_refs.py synth_sets/zoo/cifar10_dm_ipc10.h5 --dataset cifar10
    python scripts/migrate_dataset_refs.py OLD.h5 --dataset cifar10 --fingerprint 0c2774e7b85ef272
    python scripts/migrate_dataset_refs.py OLD.h5 --dataset cifar10 --data-root ~/data   # check the data as well
    python scripts/migrate_dataset_refs.py OLD.h5 --dataset cifar10 --dry-run

Sets made before portable references (condense/data/refs.py) recorded ``imagefolder:PATH`` of the machine that made
them, and format-1 files no fingerprint at all; such files resolve only through ``refs.LEGACY_NAMES`` and
``refs.LEGACY_FINGERPRINTS``. Each file is loaded with ``SynthSet.load`` (its checksum verified), given the new name
and the fingerprint (the one it records, else the one condense knows for its legacy folder, else ``--fingerprint``;
two that disagree are refused), saved with ``SynthSet.save`` (format 2; ``created`` and ``versions`` kept) beside
it, and both files are read back with plain h5py: the new file replaces the old one only when every array is
bit-identical (name, dtype, shape, bytes), the stored checksum is the same, and no attribute other than the
reference and format 2's additions differs. Prints one line per file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import replace

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from condense.errors import CondenseError  # noqa: E402
from condense.evaluation.real_data import expected_fingerprint, real_data_for  # noqa: E402
from condense.store import SynthSet  # noqa: E402

REFERENCE = ("dataset", "dataset_fingerprint", "format_version")
# What format 2 adds to a format-1 file (store.py, _ATTRS_V2): written with the values a format-1 reader infers.
FORMAT_2_ADDS = ("label_kind", "label_temperature", "relabel_network", "decoder")


def read_raw(path: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Every HDF5 dataset of the file (``decoder/...`` included) as a numpy array, and the root attributes."""
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    return arrays, attrs


def array_differences(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> list[str]:
    """The arrays that are not bit-identical (missing, added, or another dtype, shape or byte content)."""
    return [name for name in sorted(set(before) | set(after))
            if name not in before or name not in after or before[name].dtype != after[name].dtype
            or before[name].shape != after[name].shape or before[name].tobytes() != after[name].tobytes()]


def attribute_differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """Attributes that changed other than the reference itself and format 2's additions to a format-1 file."""
    upgraded = before.get("format_version") == 1
    return [k for k in sorted(set(before) | set(after)) if k not in REFERENCE
            and not (upgraded and k in FORMAT_2_ADDS and k not in before) and before.get(k) != after.get(k)]


def target_fingerprint(synth: SynthSet, given: str, path: str) -> str:
    """The fingerprint to record: the known one (recorded, or the legacy folder's), checked against ``given``."""
    known = expected_fingerprint(synth)
    if known and given and known != given:
        raise CondenseError(f"{path} was made from data with fingerprint {known}, not {given}; check --fingerprint.")
    if not (known or given):
        raise CondenseError(f"{path} records no data fingerprint and condense knows none for '{synth.dataset}'; "
                            f"pass the data's --fingerprint (or --data-root to compute it).")
    return known or given


def fingerprint_of_data(synth: SynthSet, name: str, data_root: str) -> str:
    """The fingerprint of the data ``name`` finds in ``data_root``, as the set's distillation saw it."""
    from condense.data import distilled_fingerprint, load_dataset

    run = synth.config.get("run", {}) if isinstance(synth.config.get("run"), dict) else {}
    data = load_dataset(name, root=data_root)
    return distilled_fingerprint(data, run.get("max_per_class"), synth.config.get("validation"))


def migrate(path: str, name: str, given: str, data_root: str, dry_run: bool) -> str:
    """Rewrite one file's reference (see the module docstring); returns the line to print."""
    synth = SynthSet.load(path)
    if data_root and not given and not expected_fingerprint(synth):
        given = fingerprint_of_data(synth, name, data_root)
    fingerprint = target_fingerprint(synth, given, path)
    moved = replace(synth, dataset=name, dataset_fingerprint=fingerprint)
    if data_root:
        real_data_for(moved, data_root=data_root, own=True)  # the data there is the set's own: one sentence if not
    before_arrays, before_attrs = read_raw(path)
    change = (f"dataset {synth.dataset!r} -> {name!r}, fingerprint {synth.dataset_fingerprint or '-'} -> "
              f"{fingerprint}, format {before_attrs.get('format_version')} -> 2")
    if (synth.dataset, synth.dataset_fingerprint, before_attrs.get("format_version")) == (name, fingerprint, 2):
        return f"{path}: unchanged (already {name!r}, fingerprint {fingerprint})"
    if dry_run:
        return f"{path}: would change {change}"
    staging = tempfile.mkdtemp(prefix=".migrate-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        staged = moved.save(os.path.join(staging, os.path.basename(path)))
        after_arrays, after_attrs = read_raw(staged)
        bad = [f"array {n}" for n in array_differences(before_arrays, after_arrays)] + \
              [f"attribute {k}" for k in attribute_differences(before_attrs, after_attrs)]
        if bad:
            raise CondenseError(f"{path} would change beyond its dataset reference ({', '.join(bad)}); left as it was.")
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shapes = ", ".join(f"{n} {tuple(a.shape)} {a.dtype}" for n, a in sorted(before_arrays.items()))
    return f"{path}: {change}; arrays bit-identical ({shapes}); checksum {after_attrs['checksum'][:12]} unchanged"


def fail(message: str) -> None:
    """Bad input: one sentence, exit status 2."""
    print(f"migrate_dataset_refs: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sets", nargs="+", metavar="SET.h5")
    p.add_argument("--dataset", required=True, help="the portable name to record (e.g. cifar10)")
    p.add_argument("--fingerprint", default="", help="the data's fingerprint, for a file that records none")
    p.add_argument("--data-root", default="", help="also load --dataset from this root and check its fingerprint")
    p.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    args = p.parse_args()
    if ":" in args.dataset or "/" in args.dataset:
        fail(f"--dataset must be a name, not a path ({args.dataset!r}).")
    try:
        for path in args.sets:
            print(migrate(path, args.dataset, args.fingerprint, args.data_root, args.dry_run), flush=True)
    except CondenseError as err:
        fail(str(err))


if __name__ == "__main__":
    main()
