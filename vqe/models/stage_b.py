"""Stage B (§III-C): detail synthesis, G_B(Y^A), trained adversarially on top of Stage A.

A 1-level U-Net: full-resolution features are kept as a skip, one strided conv halves the size, a
stack of residual blocks works at half resolution (cheap, wide context), then one x2 up-sampling and
a fusion with the skip restore the fine grid. The output is a residual R_B added to the input,
Y = Y^A + R_B (eq. 6). The last conv starts at zero, so an untrained Stage B is exactly the identity
and adversarial training starts from Stage A's output rather than from noise.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn

from vqe.config import StageBModel
from vqe.models.rrdb import ResidualBlock


def conv_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.2, inplace=True))


class StageB(nn.Module):
    """y: (B, 3, H, W) (Stage A's output, any H, W >= 1) -> (B, 3, H, W) = y + R_B."""


    def __init__(self, cfg: StageBModel) -> None:
        super().__init__()
        self.config = asdict(cfg)
        c = cfg.channels
        self.head = conv_act(3, c)  # full-resolution skip features
        self.down = conv_act(c, 2 * c, stride=2)
        self.body = nn.Sequential(*(ResidualBlock(2 * c) for _ in range(cfg.blocks)))
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
