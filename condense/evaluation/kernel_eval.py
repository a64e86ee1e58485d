"""Kernel-regression accuracy of a set: the set as the support of KRR under the analytic NTK (or NNGP) of a wide
ReLU MLP, scored on the real test split (the KIP / RKIP evaluation, Nguyen et al. 2021; Loo et al. 2024).

Prediction = argmax of K_test,s (K_ss + λI)⁻¹ Y_s. Y_s is the set's label matrix when it stores one (the learned
targets of kip/rkip, or soft labels), else one-hot − 1/K of its hard labels. The kernel (depth, W_std, b_std) and
λ = ridge · tr(K_ss)/n are the set's own for kip/rkip sets and Loo et al.'s (2 hidden layers, W_std 1, no bias,
1e-5) for any other, so kip, rkip, random and dm sets are compared under one kernel when they share it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import torch
from rich.markup import escape
from rich.table import Table

from ..errors import CondenseError
from ..kernels import ReluNet, Ridge, centred_one_hot, krr_coefficients, relu_kernels
from ..store import SynthSet
from .real_data import real_data_for
from .tables import titled_table

KINDS = ("ntk", "nngp")
KERNEL_METHODS = ("kip", "rkip")


def kernel_of(synth: SynthSet) -> tuple[ReluNet, Ridge]:
    """The set's own kernel and ridge (kip/rkip), else the defaults of Loo et al."""
    cfg = synth.config.get("method_config", {}) if synth.method in KERNEL_METHODS else {}
    net = ReluNet(**{k: cfg[k] for k in ("depth", "w_std", "b_std") if k in cfg}).check()
    return net, Ridge(float(cfg.get("ridge", 1e-5)), per_point=True)


@torch.no_grad()
def kernel_accuracy(synth: SynthSet, test_x: torch.Tensor, test_y: torch.Tensor, kind: str = "ntk",
                    chunk: int = 1024) -> float:
    """Top-1 accuracy (%) of kernel ridge regression with the set as its support."""
    if kind not in KINDS:
        raise CondenseError(f"Unknown kernel '{kind}'; choose one of: {', '.join(KINDS)}.")
    if synth.label_kind == "regression":
        raise CondenseError(f"The {synth.method} set holds regression targets, not class labels; kernel regression "
                            f"accuracy needs a labelled set (evaluate it with --transfer).")
    images, labels = synth.decode()
    support = images.detach().to(test_x.device)
    targets = labels.double() if labels.dim() == 2 else centred_one_hot(labels, synth.num_classes)
    net, ridge = kernel_of(synth)
    which = 0 if kind == "nngp" else 1
    alpha = krr_coefficients(relu_kernels(support, None, net)[which], targets.to(test_x.device), ridge)
    correct = 0
    for i in range(0, len(test_x), chunk):
        pred = relu_kernels(test_x[i:i + chunk], support, net)[which] @ alpha
        correct += int((pred.argmax(1) == test_y[i:i + chunk]).sum())
    return 100.0 * correct / len(test_x)


@dataclass
class KernelReport:
    kernel: str                                   # ntk | nngp
    split: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "kernel_regression", **asdict(self)}

    def title(self) -> str:
        return f"Kernel regression ({self.kernel.upper()} of a wide ReLU MLP), {self.split} accuracy (%)"

    def rich_table(self) -> Table:
        table = titled_table(self.title())
        for col in ("set", "method", "images", "kernel", "accuracy"):
            table.add_column(col, justify="right" if col in ("images", "accuracy") else "left")
        for r in self.rows:
            table.add_row(escape(os.path.basename(r["set"])), r["method"], str(r["images"]), r["kernel"],
                          f"{r['accuracy']:.2f}")
        return table

    def markdown(self) -> str:
        lines = [f"**{self.title()}**", "", "| set | method | images | kernel | accuracy |", "|---|---|---:|---|---:|"]
        lines += [f"| {os.path.basename(r['set'])} | {r['method']} | {r['images']} | {r['kernel']} | "
                  f"{r['accuracy']:.2f} |" for r in self.rows]
        return "\n".join(lines) + "\n"


def evaluate_kernel(paths: Sequence[str], kind: str = "ntk", *, dataset: Optional[str] = None,
                    data_root: Optional[str] = None, device: Any = "cpu", split: str = "test") -> KernelReport:
    """Every set's kernel-regression accuracy on its real ``split``; all bad input fails before any kernel."""
    if kind not in KINDS:
        raise CondenseError(f"Unknown kernel '{kind}'; choose one of: {', '.join(KINDS)}.")
    sets = [(p, SynthSet.load(p)) for p in paths]
    for p, s in sets:
        if s.label_kind == "regression":
            raise CondenseError(f"The set {p} holds regression targets (a {s.method} set), not class labels; "
                                f"evaluate it with --transfer TARGET.")
    report = KernelReport(kernel=kind, split=split)
    for p, s in sets:
        data = real_data_for(s, dataset, data_root, device, split=split)
        net, ridge = kernel_of(s)
        report.rows.append({"set": p, "method": s.method, "images": int(s.images.shape[0]),
                            "kernel": f"depth {net.depth}, W_std {net.w_std:g}, b_std {net.b_std:g}, "
                                      f"ridge {ridge.coefficient:g}·tr/n",
                            "accuracy": kernel_accuracy(s, data.test_x, data.test_y, kind)})
    return report
