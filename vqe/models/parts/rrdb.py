"""Residual-in-Residual Dense Blocks (ESRGAN) with ECBAM inside, the body of Stage A (§III-B).

Residual scaling (0.2) and small initial weights keep a deep stack of blocks close to the identity at
the start, which is what lets 30 of them train without normalisation layers.
"""

from __future__ import annotations

import torch
from torch import nn

from vqe.models.parts.attention import ECBAM

RES_SCALE = 0.2


def scaled_kaiming_(module: nn.Module, scale: float = 0.1) -> None:
    """Kaiming init shrunk by `scale` for every conv in `module` (ESRGAN's initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                m.bias.data.zero_()


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the last fuses back to `channels`."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels + i * growth, growth if i < 4 else channels, 3, padding=1) for i in range(5))
        self.act = nn.LeakyReLU(0.2, inplace=True)
        scaled_kaiming_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(self.act(out))
        return x + RES_SCALE * out


class RRDB(nn.Module):
    """Three dense blocks, then (optionally) ECBAM, inside a scaled residual connection."""

    def __init__(self, channels: int, growth: int, attention: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(*(ResidualDenseBlock(channels, growth) for _ in range(3)))
        self.attention = ECBAM(channels) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RES_SCALE * self.attention(self.body(x))


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity shortcut (no batch norm), for feature extraction; with `attention`,
    ECBAM gates the residual (the cheap trunk block of Stage A's low-resolution recipe keeps the paper's
    attention, so its "no ECBAM" ablation still means something)."""

    def __init__(self, channels: int, attention: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        scaled_kaiming_(self)
        self.attention = ECBAM(channels) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.conv2(torch.relu(self.conv1(x))))
