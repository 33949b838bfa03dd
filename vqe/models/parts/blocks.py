"""Small blocks several architectures build with: pixel-shuffle up-sampling, conv + LeakyReLU."""

from __future__ import annotations

import math

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
