"""ESRGAN + DnCNN, the "ESRGAN+Denoise" baseline of Table 1 (§IV-C): two single-image systems chained.

It stands for the cheap alternative to video restoration: a generic denoiser plus a generic
super-resolver, with no temporal context (`n = 0`). DnCNN (Zhang et al., 2017) removes the noise at the
decoded size, then ESRGAN's RRDB network (Wang et al., 2018) up-scales the denoised frame.

Deviations from the paper's row, and why:
  - Trained on our data (the shared trainer), since no DIV2K-trained weights are available offline;
    `aux_loss` gives DnCNN its own objective so the two parts can still be supervised as the two
    separately trained systems they are, rather than only end to end.
  - x2 (the paper's ESRGAN is x4 on DIV2K): our task is 2x, and a x4 model would need a resize anyway.
  - Denoise -> SR, although the paper writes "ESRGAN followed by DnCNN": an SR network fed codec
    artefacts magnifies them into false texture that a denoiser at the output size can no longer tell
    from detail, and denoising at the decoded size costs scale^2 less.

Unlike Stage A and EDVR, the output is the RRDB net's image itself, not a residual on a bicubic base:
that is how ESRGAN works, so an untrained model does not return its base.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.rrdb import RRDB


def _conv(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


class DnCNN(nn.Module):
    """conv+ReLU, (depth-2) x (conv+BN+ReLU), conv: predicts the noise; returns x - noise (residual learning)."""

    def __init__(self, depth: int = 17, channels: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(3, channels), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [_conv(channels, channels, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.last = _conv(channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.last(self.body(x))


class RRDBNet(nn.Module):
    """ESRGAN's generator: first conv, RRDB trunk + trunk conv with a skip, (nearest x2 + conv + LeakyReLU)
    per x2 step, HR conv, last conv. Nearest-neighbour + conv rather than pixel shuffle, as in ESRGAN."""

    def __init__(self, scale: int, blocks: int = 23, channels: int = 64, growth: int = 32) -> None:
        super().__init__()
        if scale < 1 or scale & (scale - 1):
            raise ValueError(f"ESRGAN up-scales by powers of 2, got scale={scale}")
        c = channels
        self.conv_first = _conv(3, c)
        self.trunk = nn.Sequential(*(RRDB(c, growth, attention=False) for _ in range(blocks)))
        self.trunk_conv = _conv(c, c)
        self.up_convs = nn.ModuleList(_conv(c, c) for _ in range(scale.bit_length() - 1))
        self.conv_hr, self.conv_last = _conv(c, c), _conv(c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.trunk_conv(self.trunk(feat))
        for conv in self.up_convs:
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class ESRGANDnCNN(nn.Module):
    """x: (B, 1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale); `last_denoised` keeps DnCNN's (B, 3, h, w)."""

    arch = "esrgan_dncnn"
    n = 0

    def __init__(self, scale: int = 2, *, blocks: int = 23, channels: int = 64, growth: int = 32,
                 dncnn_depth: int = 17, dncnn_channels: int = 64) -> None:
        super().__init__()
        self.config = dict(blocks=blocks, channels=channels, growth=growth, dncnn_depth=dncnn_depth,
                           dncnn_channels=dncnn_channels)
        self.scale = scale
        self.denoiser = DnCNN(dncnn_depth, dncnn_channels)
        self.sr = RRDBNet(scale, blocks, channels, growth)
        self.last_denoised: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1:
            raise ValueError(f"ESRGAN+DnCNN is single-frame: expects windows of 1 frame, got {x.shape[1]}")
        self.last_denoised = self.denoiser(x[:, 0])
        return self.sr(self.last_denoised)

    def aux_loss(self, gt_low: torch.Tensor) -> torch.Tensor:
        """DnCNN's own objective: MSE of the last forward pass's denoised frame against `gt_low`, the ground
        truth at the decoded size (B, 3, h, w); up to a constant, DnCNN's ||noise - predicted noise||^2."""
        if self.last_denoised is None:
            raise RuntimeError("aux_loss needs a forward pass first")
        if gt_low.shape != self.last_denoised.shape:
            raise ValueError(f"aux_loss: target {tuple(gt_low.shape)} is not the denoised frame's "
                             f"{tuple(self.last_denoised.shape)}")
        return F.mse_loss(self.last_denoised, gt_low)
