"""The optimisers, schedules and weight averages of every phase, built in one place: Adam with the phase's
betas, a cosine decay to `lr_min`, and the optional exponential moving average (EMA) of the weights."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vqe.config import TrainParams


def adam(params: Iterable[Any], cfg: TrainParams, lr: Optional[float] = None) -> torch.optim.Adam:
    """Adam over `params` with `cfg.betas`: parameter groups carry their own learning rates, plain
    parameters take `lr` (a discriminator's `d_lr`)."""
    if lr is None:
        return torch.optim.Adam(params, betas=tuple(cfg.betas))
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))


def cosine(optimizer: torch.optim.Optimizer, iters: int, lr_min: float) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay from each group's learning rate to `lr_min` over `iters` scheduler steps."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iters, eta_min=lr_min)


def ema(model: nn.Module, decay: float, *, buffers: bool = False) -> Optional[AveragedModel]:
    """The EMA of `model`'s weights at `decay` (None when `decay` is 0); `buffers`: average the buffers too."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=buffers)
