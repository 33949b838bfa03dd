"""What a model hands its trainer: the `View` of one training forward pass and, for an adversarial
game, the `Adversary` (a discriminator and its paper's losses).

An architecture with its own way of being trained defines them next to itself: a `training_view`
method (SUPERVEGAN's progressive schedule, TecoGAN's ping-pong recurrence) and an `adversary(cfg, patch)`
function that `vqe.registry.GAMES` names (Galteri's, SUPERVEGAN's and TecoGAN's games). So a baseline's
training depends on its own file and on no other architecture's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class View(NamedTuple):
    """What one training forward pass gives the objective: the output scored against the ground truth,
    the model's own term (or None), whether the main terms apply yet, and values to log. A sequence model
    also gives its `target` (the batch's ground truth rearranged like `out`), its discriminator's `cond`
    (default: the bicubic up-sampled centre frame) and its `temporal` terms (unweighted, by name:
    "pingpong", "warp"; weighted by `loss.<name>_weight`)."""

    out: Tensor
    aux: Optional[Tensor]
    main: bool
    logs: dict[str, float]
    target: Optional[Tensor] = None
    cond: Any = None
    temporal: Optional[dict[str, Tensor]] = None


@dataclass
class Adversary:
    """One adversarial game: a discriminator and its paper's losses, `d_loss(D, real, fake, cond)` and
    `g_loss(D, real, fake, cond)` (`D`: the discriminator as run, e.g. its DDP wrapper; `cond`: what a
    conditional discriminator also sees, e.g. the bicubic up-sampled decode). Every game of the project is one:
    ours (`vqe.train.gan.ragan`, one per discriminator) and each Table 1 baseline's (`vqe.registry.GAMES`).
    `d_loss` may record what to log about its last call in `logs` (ours: the critic's accuracy)."""

    disc: nn.Module
    d_loss: Callable[[nn.Module, Tensor, Tensor, Any], Tensor]
    g_loss: Callable[[nn.Module, Tensor, Tensor, Any], Tensor]
    logs: dict[str, float] = field(default_factory=dict)


def down_to(gt: Tensor, size: torch.Size) -> Tensor:
    """The ground truth at a model's intermediate resolution (area averaging: our degradation's down-scaling)."""
    return gt if gt.shape[-2:] == size[-2:] else F.interpolate(gt, size=size[-2:], mode="area")
