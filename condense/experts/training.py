"""Training one expert: a fresh network on the real training set with non-siamese DSA, its flat
parameters kept at init and after every epoch (the trajectory MTT matches)."""
from __future__ import annotations

import torch

from ..augment import dsa_for
from ..data import ImageDataset
from ..models import ParamLayout, create_model
from ..seeding import seed_for
from ..train import Labels, fit, test_accuracy
from .config import ExpertConfig


def input_gradient_penalty(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """AST: mean over pixels of (‖∂Σlogits/∂x‖_channels − 1)², on the un-augmented batch."""
    x = x.detach().requires_grad_(True)
    g = torch.autograd.grad(model(x).sum(), x, create_graph=True)[0]
    return ((g.norm(dim=1) - 1) ** 2).mean()


def train_expert(cfg: ExpertConfig, data: ImageDataset, index: int,
                 device: torch.device) -> tuple[torch.Tensor, ParamLayout, float]:
    """Train expert ``index``; returns (snapshots (epochs+1, P) on CPU, layout, final test accuracy)."""
    seed = seed_for("expert", cfg.seed, index)
    torch.manual_seed(seed)
    c, h, w = data.image_shape
    model = create_model(cfg.model, c, data.num_classes, (h, w), **cfg.model_args).to(device)
    layout = ParamLayout.of(model)
    snaps = [layout.flatten(model).cpu()]

    def penalty(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return cfg.grad_penalty * input_gradient_penalty(net, x)

    fit([model], [torch.Generator().manual_seed(seed)], data.train_x, Labels(data.train_y), cfg.recipe(),
        dsa=dsa_for(data.hflip_safe) if cfg.dsa else None, loss_scale=cfg.loss_scale if cfg.loss_ramp else None,
        extra_loss=penalty if cfg.grad_penalty > 0 else None, on_epoch=lambda epoch, loss: snaps.append(layout.flatten(model).cpu()))
    return torch.stack(snaps), layout, test_accuracy(model, data.test_x, data.test_y)
