"""Per-method hyper-parameter presets, as data: method -> list of (match, values).

A row matches when every key it names fits the run: "dataset" and "ipc" must be equal,
"min_ipc"/"max_ipc" bound the IPC. Later rows override earlier ones. The dataclass defaults are the base; CLI options override the result.
"""
from __future__ import annotations

from typing import Any

# Official DC/DSA get_loops (outer_loop, inner_loop) by IPC. An IPC between two listed values
# takes the row of the largest listed IPC below it (the official code refuses such IPCs).
_LOOPS = [(1, 1, 1), (10, 10, 50), (20, 20, 25), (30, 30, 20), (40, 40, 15), (50, 50, 10)]
_GRADIENT_MATCHING: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"min_ipc": ipc}, {"outer_loop": outer, "inner_loop": inner}) for ipc, outer, inner in _LOOPS
]

PRESETS: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {
    "dm": [
        # Official DM: lr_img 1 up to IPC 50 on CIFAR, 10 above; 20k iterations on GPU. The default
        # budget here is sized for a 2-core CPU (see README); raise --iterations for more.
        ({"min_ipc": 100}, {"lr_img": 10.0}),
        ({"dataset": "digits"}, {"batch_real": 64}),
    ],
    "random": [],
    "dc": _GRADIENT_MATCHING,
    "dsa": _GRADIENT_MATCHING,
    "datadam": [
        # Paper table: lr_img 1 up to IPC 50, 10 above; batch_real 64 (code default).
        ({"min_ipc": 51}, {"lr_img": 10.0}),
        ({"dataset": "digits"}, {"batch_real": 32}),
    ],
}


def preset_for(method: str, dataset: str, ipc: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for match, row in PRESETS.get(method, []):
        if _matches(match, dataset, ipc):
            values.update(row)
    return values


def _matches(match: dict[str, Any], dataset: str, ipc: int) -> bool:
    tests = {
        "dataset": lambda v: dataset == v,
        "ipc": lambda v: ipc == v,
        "min_ipc": lambda v: ipc >= v,
        "max_ipc": lambda v: ipc <= v,
    }
    return all(tests[key](value) for key, value in match.items())
