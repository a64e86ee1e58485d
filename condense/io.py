"""Every file and folder the library writes goes through here, so no output is ever left half-written.

A file is written to a temporary name in its destination folder, flushed to disk and moved over the
destination in one ``os.replace``; a failure removes the temporary file and leaves any earlier
output untouched. A folder is built aside and swapped in whole. Written files follow the umask
like any new file (``mkstemp`` alone would make them 0600).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np


def cache_root(*parts: str) -> str:
    """``$CONDENSE_CACHE`` (default ``~/.cache/condense``), joined with ``parts``: decoded datasets, teachers."""
    root = os.environ.get("CONDENSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "condense")
    return os.path.join(root, *parts)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write(path: str, write_fn: Callable[[str], Any]) -> str:
    """Call ``write_fn(tmp_path)``, sync the result, then move it over ``path`` in one step. Returns ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        write_fn(tmp)
        _sync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_text(path: str, text: str) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def write_json(path: str, obj: Any, indent: int = 2, **dump_options: Any) -> str:
    return write_text(path, json.dumps(obj, indent=indent, **dump_options) + "\n")


def write_npz(path: str, **arrays: np.ndarray) -> str:
    """Plain arrays only (read back with ``allow_pickle=False``)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
            np.savez(f, **arrays)

    return atomic_write(path, write)


@contextmanager
def staged_folder(final: str) -> Iterator[str]:
    """Yield an empty folder beside ``final``; on success it replaces ``final`` whole, on failure it is removed."""
    parent = os.path.dirname(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        old = None
        if os.path.exists(final):
            old = staging + ".old"
            os.replace(final, old)
        os.replace(staging, final)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
