"""Stage B (§III-C): detail synthesis, G_B(Y^A), trained adversarially on top of Stage A.

A 1-level U-Net: full-resolution features are kept as a skip, one strided conv halves the size, a
stack of residual blocks works at half resolution (cheap, wide context), then one x2 up-sampling and
a fusion with the skip restore the fine grid. The output is a residual R_B added to the input,
Y = Y^A + R_B (eq. 6). The last conv starts at zero, so an untrained Stage B is exactly the identity
and adversarial training starts from Stage A's output rather than from noise.

The full generator G = G_B(G_A(X_{t-N:t+N})) (eq. 1) lives here too: one module for phase 2, evaluation
and `vqe enhance`. Stage A restores the centre frame of a 2N+1 window; Stage B adds a residual of
synthesised detail on top (eq. 6). With `stage_b.enabled = false` (the "no Stage B" ablation) the
generator is Stage A alone. `sequence_windows` cuts a short clip into the windows of its frames, which is
what the temporal losses (ping-pong, flow, D_T) of phase 2 need (`vqe.train.gan.generate` runs them in one
batch).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.blocks import conv_act
from vqe.models.parts.rrdb import ResidualBlock
from vqe.models.stage_a import StageA


class StageB(nn.Module):
    """y: (B, 3, H, W) (Stage A's output, any H, W >= 1) -> (B, 3, H, W) = y + R_B."""

    def __init__(self, *, channels: int, blocks: int) -> None:
        super().__init__()
        self.config = dict(channels=channels, blocks=blocks)
        c = channels
        self.head = conv_act(3, c)  # full-resolution skip features
        self.down = conv_act(c, 2 * c, stride=2)
        self.body = nn.Sequential(*(ResidualBlock(2 * c) for _ in range(blocks)))
        self.body_conv = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_act(2 * c, c))
        self.fuse = conv_act(2 * c, c)
        self.conv_last = nn.Conv2d(c, 3, 3, padding=1)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def residual(self, y: torch.Tensor) -> torch.Tensor:
        """R_B for an input of even height and width."""
        skip = self.head(y)
        feat = self.up(self.body_conv(self.body(self.down(skip))))
        return self.conv_last(self.fuse(torch.cat([feat, skip], 1)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2:]
        ph, pw = h % 2, w % 2  # the single down/up-sampling needs even sizes
        padded = F.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y
        return y + self.residual(padded)[..., :h, :w]


class Generator(nn.Module):
    """x: (B, 2n+1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale)."""

    arch = "generator"

    def __init__(self, *, stage_a: dict[str, Any], stage_b: dict[str, Any], scale: int = 1, impl: str = "auto") -> None:
        """`stage_a`, `stage_b`: the keys of `stage_a.model` and `stage_b.model` (Stage B is left out when
        `stage_b["enabled"]` is false)."""
        super().__init__()
        self.stage_a = StageA(**stage_a, scale=scale, impl=impl)
        self.stage_b: Optional[StageB] = (StageB(channels=stage_b["channels"], blocks=stage_b["blocks"])
                                          if stage_b["enabled"] else None)
        self.config = {"stage_a": dict(stage_a), "stage_b": dict(stage_b)}
        self.n, self.scale = self.stage_a.n, self.stage_a.scale

    @classmethod
    def from_stage_a(cls, stage_a: StageA, stage_b: dict[str, Any]) -> Generator:
        """A generator around trained Stage A weights (phase 2 starts here); Stage B starts as the identity."""
        gen = cls(stage_a=stage_a.config, stage_b=stage_b, scale=max(stage_a.scale, 1))
        gen.stage_a.load_state_dict(stage_a.state_dict())
        return gen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stage_a(x)
        return self.stage_b(y) if self.stage_b is not None else y
