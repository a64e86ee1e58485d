"""Catalogs of network files: ``catalog.json`` beside the files, one row per file read back from the file itself,
so the listing cannot drift from what the folder holds (teachers and SSL targets, full-data references)."""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from ..errors import CondenseError
from ..io import read_json, write_json
from .netfile import NetworkInfo, read_network_info

CATALOG = "catalog.json"


def network_infos(folder: str, roles: Sequence[str]) -> list[NetworkInfo]:
    """The network files of ``folder`` with one of ``roles``, by file name (other files are skipped)."""
    infos = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".h5"):
            try:
                info = read_network_info(os.path.join(folder, name))
            except CondenseError:
                continue  # not a network file (e.g. a set someone put there)
            if info.role in roles:
                infos.append(info)
    return infos


def read_network_catalog(folder: str, key: str, what: str) -> list[dict[str, Any]]:
    """The rows of ``folder/catalog.json`` ([] when there is none), each an object naming its file; anything
    else is one sentence naming ``what`` the file should be."""
    path = os.path.join(folder, CATALOG)
    if not os.path.isfile(path):
        return []
    blob = read_json(path, what)
    rows = blob.get(key) if isinstance(blob, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("file"), str) for r in rows):
        raise CondenseError(f"{what} {path} is not a catalog (an object whose '{key}' is a list of rows, each "
                            f"naming its file); restore it from git.")
    return rows


def write_network_catalog(folder: str, key: str, roles: Sequence[str], row: Callable[[NetworkInfo], dict],
                          kept: Sequence[dict] = ()) -> str:
    """``folder/catalog.json`` as ``{key: rows}``: ``row`` of every network file of ``roles``, plus the rows of
    ``kept`` whose file is not in the folder (a catalog that outlives uncommitted weights); sorted by file name,
    keys sorted, so an unchanged folder rewrites the same bytes."""
    rows = {os.path.basename(i.path): row(i) for i in network_infos(folder, roles)}
    for r in kept:
        rows.setdefault(r["file"], r)  # a file present wins over its old row
    return write_json(os.path.join(folder, CATALOG), {key: [rows[f] for f in sorted(rows)]}, sort_keys=True)
