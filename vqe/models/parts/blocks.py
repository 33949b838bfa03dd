"""Small blocks several architectures build with: pixel-shuffle up-sampling, conv + LeakyReLU, and the sliding
windows of a clip."""

from __future__ import annotations

import math

import torch
from torch import nn


def upsampler(channels: int, scale: int) -> nn.Sequential:
    """Pixel-shuffle steps (x2 each, or one x3) from trunk features to `scale` times their size."""
    if scale == 1:
        return nn.Sequential()
    steps = [3] if scale == 3 else [2] * int(math.log2(scale))
    layers: list[nn.Module] = []
    for s in steps:
        layers += [nn.Conv2d(channels, channels * s * s, 3, padding=1), nn.PixelShuffle(s), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers)


def conv_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.2, inplace=True))


def sequence_windows(lq: torch.Tensor, n: int) -> torch.Tensor:
    """(B, 2n+k, C, h, w) -> (B, k, 2n+1, C, h, w): window j holds frames j..j+2n (views, no copy)."""
    k = lq.shape[1] - 2 * n
    if k < 1:
        raise ValueError(f"need at least {2 * n + 1} frames for windows of radius {n}, got {lq.shape[1]}")
    return lq.unfold(1, 2 * n + 1, 1).movedim(-1, 2)[:, :k]
