"""Single networks a set names by checksum, other than its teachers: KRR-ST's self-supervised target and DQ's
masked autoencoder.

A KRR-ST set (Lee et al., ICLR 2024; official db-Lee/selfsup_dd) learns its regression targets against a
target network (``condense ssl``, role ``ssl``), and the transfer evaluation's random-subset baseline regresses
on that same network; a DQ set (Zhou et al., ICCV 2023) is made with a masked autoencoder (``condense mae``, role
``autoencoder``). A set names such a network the way relabel sets name their teachers: by ``network_reference``
(checksum, role, architecture and its arguments, the data and its fingerprint, the file name as a hint, and the
training record, from which the command that rebuilds it is written), and the method option that gave it holds
its checksum, which ``option_file`` resolves. ``find_network`` finds the file, in this order: a file the user
gives (refused when its checksum is another), the file with that checksum in the teacher folder
(``$CONDENSE_TEACHERS``, else ``synth_sets/teachers``, through ``find_reference``), and, for sets made before
references were portable, the absolute path they recorded, then their file name in the teacher folder (each
checked against the checksum). When none is there, one sentence says how to get it back.
"""
from __future__ import annotations

import os
import re
from typing import Optional

from ..errors import CondenseError
from ..models import NetworkInfo, read_network_info
from .files import default_teachers_dir, find_reference

CHECKSUM = re.compile(r"[0-9a-f]{64}")  # a network file's SHA-256: how a set's options name a network


def network_reference(info: NetworkInfo) -> dict:
    """How a set names one network it depends on: no path, so the set stays valid wherever the file goes."""
    return {"checksum": info.checksum, "role": info.role, "architecture": info.architecture,
            "model_args": info.model_args, "dataset": info.dataset, "dataset_fingerprint": info.dataset_fingerprint,
            "file": os.path.basename(info.path), "training": info.training}


def file_hint(reference: dict) -> str:
    """The file name the network had when the set was made (older sets recorded a full ``path``)."""
    name = reference.get("file") or os.path.basename(str(reference.get("path") or ""))
    return name if isinstance(name, str) else ""


def describe(reference: dict) -> str:
    """``BarlowTwins (checksum 6e918498f312…, file mnist5k_ssl_dd602432.h5)``."""
    hint = file_hint(reference)
    return (f"{reference.get('architecture')} (checksum {str(reference.get('checksum'))[:12]}…"
            f"{', file ' + hint if hint else ''})")


def check_named(path: str, reference: dict, where: str) -> str:
    """``path`` when it is the network ``reference`` names (same checksum), else one sentence."""
    info = read_network_info(path)
    if info.checksum != reference.get("checksum"):
        raise CondenseError(f"{where} names the network {describe(reference)}, but {path} is another one (checksum "
                            f"{info.checksum[:12]}…); give the set's own network.")
    return os.path.abspath(path)


def _candidates(reference: dict, folder: str) -> list[str]:
    """Where an older set's network may be: the path it recorded, then its file name in ``folder``."""
    old, hint = reference.get("path"), file_hint(reference)
    paths = [old if isinstance(old, str) else "", os.path.join(folder, hint) if hint else ""]
    return [p for p in dict.fromkeys(paths) if p and os.path.isfile(p)]


def find_network(reference: dict, *, where: str, rebuild: str, give: str, given: str = "",
                 folder: Optional[str] = None) -> str:
    """The absolute path of the network ``reference`` names (see the module docstring). ``rebuild`` is the command
    that makes it again and ``give`` the option that passes a file (``--ssl FILE``), both quoted in the sentence
    that refuses a missing network."""
    if given:
        return check_named(given, reference, where)
    folder = folder or default_teachers_dir()
    found = find_reference(reference, folder, role=str(reference.get("role") or "ssl"))
    if found:
        return os.path.abspath(found)
    candidates = _candidates(reference, folder)
    for path in candidates:
        if read_network_info(path).checksum == reference.get("checksum"):
            return os.path.abspath(path)
    if candidates:
        check_named(candidates[0], reference, where)  # there, but another network: say so
    raise CondenseError(f"{where} names the network {describe(reference)}, which is not in {folder} "
                        f"($CONDENSE_TEACHERS chooses the folder); rebuild it there with `{rebuild}`, or pass its "
                        f"file with {give}.")


def option_file(value: str, *, role: str, architecture: str, where: str, give: str, rebuild: str) -> str:
    """The network file a method option names (krr_st's ``target``, dq's ``mae``): a file, or the checksum of a
    file of ``role`` in the teacher folder (how a set's own options name it, so a re-run or a resumed run finds it
    wherever it moved). Sets made before that recorded a path, which may be gone: then its file name in the teacher
    folder is taken. ``rebuild`` is the command that makes the network, without ``--out``: the sentence that
    refuses a missing one adds where to write it."""
    if os.path.isfile(value):
        return value
    folder = default_teachers_dir()
    if CHECKSUM.fullmatch(value):
        return find_network({"checksum": value, "role": role, "architecture": architecture}, where=where, give=give,
                            rebuild=f"{rebuild} --out {os.path.join(folder, 'NAME.h5')}", folder=folder)
    name = os.path.basename(value)
    if name and os.path.isfile(os.path.join(folder, name)):
        return os.path.join(folder, name)
    raise CondenseError(f"{where} names the network file {value}, which does not exist (nor does {name or 'it'} in "
                        f"{folder}: $CONDENSE_TEACHERS chooses the folder); rebuild it there with `{rebuild} --out "
                        f"{os.path.join(folder, name or 'NAME.h5')}`, or pass its file or checksum with {give}.")
