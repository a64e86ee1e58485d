"""Every file and folder the library writes goes through here, so no output is ever left half-written.

A file is written to a temporary name in its destination folder, flushed to disk and moved over the
destination in one ``os.replace``; a failure removes the temporary file and leaves any earlier
output untouched. A folder is built aside and swapped in whole. Written files follow the umask
like any new file (``mkstemp`` alone would make them 0600). No write lands on one of the run's
inputs (declared with :func:`reading`), and a write the system refuses (disk full, permissions)
is one CondenseError sentence.
"""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional

import h5py
import numpy as np

from .errors import CondenseError

_INPUTS: set[str] = set()  # real paths of the running command's inputs (see reading())


def cache_root(*parts: str) -> str:
    """``$CONDENSE_CACHE`` (default ``~/.cache/condense``), joined with ``parts``: decoded datasets, teachers."""
    root = os.environ.get("CONDENSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "condense")
    return os.path.join(root, *parts)


def reason(err: OSError) -> str:
    """The system's reason for a failed file operation, in words ("permission denied", "no space left on device")."""
    text = os.strerror(err.errno) if err.errno else (str(err).splitlines() or [""])[0] or err.__class__.__name__
    return text[0].lower() + text[1:]


def unreadable(path: str, err: OSError, what: str = "") -> Optional[CondenseError]:
    """The sentence for a file the system would not let us read (permissions), else None."""
    if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM):
        return CondenseError(f"{what or 'File'} {path} cannot be read: permission denied.")
    return None


@contextmanager
def reading(paths: Iterable[Optional[str]]) -> Iterator[None]:
    """Declare the run's input files and folders: each must be readable, and no write may land on one."""
    added = set()
    for path in filter(None, paths):
        if os.path.isfile(path):
            try:
                open(path, "rb").close()
            except OSError as err:
                raise (unreadable(path, err) or CondenseError(f"File {path} cannot be read: {reason(err)}.")) from None
        real = os.path.realpath(path)
        if real not in _INPUTS:
            added.add(real)
    _INPUTS.update(added)
    try:
        yield
    finally:
        _INPUTS.difference_update(added)


def _nearest_folder(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return folder


def check_output(path: str, folder: bool = False, owned: Optional[Callable[[list[str]], bool]] = None,
                 probe: bool = True) -> str:
    """Refuse, in one sentence, an output that would land on an input, has the wrong kind (a folder where a
    file goes, or the reverse), is an existing folder ``owned`` does not recognise as an earlier output of
    the same command (its files would be lost), or cannot be created there (``probe`` writes and removes a
    temporary file). Returns ``path``."""
    real = os.path.realpath(path)
    if real in _INPUTS or (folder and any(p.startswith(real + os.sep) for p in _INPUTS)):
        raise CondenseError(f"Output {path} would overwrite an input of this run; choose another output path.")
    if os.path.isdir(path) and not folder:
        raise CondenseError(f"Output {path} is a folder; give a file name.")
    if os.path.exists(path) and folder and not os.path.isdir(path):
        raise CondenseError(f"Output {path} is a file; give a folder name.")
    if folder and os.path.isdir(path) and owned is not None and os.listdir(path) and not owned(os.listdir(path)):
        raise CondenseError(f"Output folder {path} holds files this command did not write; choose an empty or "
                            f"new folder.")
    parent = _nearest_folder(path)
    if not os.path.isdir(parent):
        raise CondenseError(f"Cannot write {path}: {parent} is not a folder.")
    if probe:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", dir=parent)
            os.close(fd)
            os.remove(tmp)
        except OSError as err:
            raise CondenseError(f"Cannot write {path}: {reason(err)}.") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _sync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def clean_stale(folder: str, tag: str) -> None:
    """Remove temporary files and staging folders named ``.tmp-<pid>-...<tag>...`` left by killed processes.

    A folder swap killed between its two renames leaves the earlier folder as ``<staging>.old`` and no
    folder in its place: that one is moved back rather than removed.
    """
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = name[len(".tmp-"):].split("-", 1)[0]
        if not (name.startswith(".tmp-") and tag in name and pid.isdigit() and not _alive(int(pid))):
            continue
        path = os.path.join(folder, name)
        final = os.path.join(folder, tag.strip("-"))
        if name.endswith(".old") and not os.path.exists(final):
            os.replace(path, final)
        elif os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                pass


def atomic_write(path: str, write_fn: Callable[[str], Any]) -> str:
    """Call ``write_fn(tmp_path)``, sync the result, then move it over ``path`` in one step. Returns ``path``."""
    check_output(path, probe=False)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        clean_stale(folder, "-" + os.path.basename(path))
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix="-" + os.path.basename(path), dir=folder)
        os.close(fd)
        write_fn(tmp)
        _sync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _sync_folder(folder)
    except OSError as err:
        raise CondenseError(f"Cannot write {path}: {reason(err)}; any earlier file there is unchanged.") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text(path: str, text: str) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def write_bytes(path: str, data: bytes) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def write_hdf5(path: str, fill: Callable[[h5py.File], Any]) -> str:
    """``fill`` an HDF5 file built in memory, then write its bytes: a full disk then fails in a plain write,
    never inside HDF5 (whose failed flushes print tracebacks while closing and crashed the process at exit)."""
    def write(tmp: str) -> None:
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            fill(f)
        with open(tmp, "wb") as out:
            out.write(buffer.getbuffer())

    return atomic_write(path, write)


def read_json(path: str, what: str, missing_hint: str = "") -> Any:
    """The JSON in ``path``; a missing or unreadable file is one sentence naming ``what`` it should be."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CondenseError(f"{what} {path} does not exist{missing_hint}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise CondenseError(f"{what} {path} is not readable JSON.") from None


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
    """Yield an empty folder beside ``final``; on success it replaces ``final`` whole, on failure it is removed.

    Staging folders of an earlier run of the same output that was killed are removed first.
    """
    check_output(final, folder=True, probe=False)
    parent = os.path.dirname(os.path.abspath(final))
    tag = "-" + os.path.basename(os.path.abspath(final)) + "-"
    try:
        os.makedirs(parent, exist_ok=True)
        clean_stale(parent, tag)
        staging = tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}{tag}", dir=parent)
    except OSError as err:
        raise CondenseError(f"Cannot write {final}: {reason(err)}.") from None
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    try:
        os.chmod(staging, 0o777 & ~_umask())
        if os.path.exists(final):
            old = staging + ".old"
            os.replace(final, old)
        os.replace(staging, final)
        _sync_folder(parent)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        if old and os.path.isdir(old) and not os.path.exists(final):
            os.replace(old, final)  # put the earlier folder back
        shutil.rmtree(staging, ignore_errors=True)
        raise CondenseError(f"Cannot write {final}: {reason(err)}; any earlier folder there is unchanged.") from None
