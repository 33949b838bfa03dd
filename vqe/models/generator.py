"""The full generator G = G_B(G_A(X_{t-N:t+N})) (eq. 1): one module for phase 2, evaluation and `vqe enhance`.

Stage A restores the centre frame of a 2N+1 window; Stage B adds a residual of synthesised detail
on top (eq. 6). With `stage_b.enabled = false` (the "no Stage B" ablation) the generator is Stage
A alone. `sequence_windows` cuts a short clip into the windows of its frames, which is what the
temporal losses (ping-pong, flow, D_T) of phase 2 need (`vqe.train.gan.generate` runs them in one batch).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

import torch
from torch import nn

from vqe.config import StageAModel, StageBModel
from vqe.models.stage_a import StageA
from vqe.models.stage_b import StageB


class Generator(nn.Module):
    """x: (B, 2n+1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale)."""

    arch = "generator"

    def __init__(self, stage_a: StageAModel, stage_b: StageBModel, scale: int = 1, impl: str = "auto") -> None:
        super().__init__()
        self.stage_a = StageA(stage_a, scale=scale, impl=impl)
        self.stage_b: Optional[StageB] = StageB(stage_b) if stage_b.enabled else None
        self.config = {"stage_a": asdict(stage_a), "stage_b": asdict(stage_b)}
        self.n, self.scale = self.stage_a.n, self.stage_a.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stage_a(x)
        return self.stage_b(y) if self.stage_b is not None else y


def sequence_windows(lq: torch.Tensor, n: int) -> torch.Tensor:
    """(B, 2n+k, C, h, w) -> (B, k, 2n+1, C, h, w): window j holds frames j..j+2n (views, no copy)."""
    k = lq.shape[1] - 2 * n
    if k < 1:
        raise ValueError(f"need at least {2 * n + 1} frames for windows of radius {n}, got {lq.shape[1]}")
    return lq.unfold(1, 2 * n + 1, 1).movedim(-1, 2)[:, :k]


def from_stage_a(stage_a: StageA, stage_b: StageBModel) -> Generator:
    """A generator around trained Stage A weights (phase 2 starts here); Stage B starts as the identity."""
    gen = Generator(StageAModel(**stage_a.config), stage_b, scale=max(stage_a.scale, 1))
    gen.stage_a.load_state_dict(stage_a.state_dict())
    return gen
