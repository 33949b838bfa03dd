"""PatchGAN discriminators for Stage B's adversarial training (§III-C).

pix2pix's PatchGAN classifies every overlapping patch (70x70 with 3 stride-2 layers) as real or fake,
which judges texture rather than global layout and works at any image size. The spatial D_S sees
single frames (3 channels); the temporal D_T (TecoGAN-style) sees 3 consecutive frames stacked on the
channel axis (9 channels), so flicker between frames is something it can penalise.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn

KERNEL = 4
IN_CHANNELS = {"spatial": 3, "temporal": 9}


def strides(layers: int) -> list[int]:
    """Conv strides of the stack: `layers` down-samplings, then two stride-1 convs (pix2pix)."""
    return [2] * layers + [1, 1]


class PatchDiscriminator(nn.Module):
    """x: (B, in_channels, H, W) in [0, 1] -> real/fake logits (B, 1, h', w'), one per patch."""

    def __init__(self, in_channels: int, channels: int = 64, layers: int = 3, spectral_norm: bool = False) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a PatchDiscriminator needs at least 1 down-sampling layer, got {layers}")
        self.spectral_norm = spectral_norm
        width = [channels * min(2 ** i, 8) for i in range(layers + 1)]  # pix2pix caps the width at 8c
        mods: list[nn.Module] = [self.conv(in_channels, channels, 2, norm=False), nn.LeakyReLU(0.2, True)]
        for i in range(1, layers + 1):  # the last of these is the first stride-1 conv
            stride = 2 if i < layers else 1
            mods += [self.conv(width[i - 1], width[i], stride, norm=True), self.norm(width[i]),
                     nn.LeakyReLU(0.2, True)]
        mods.append(self.conv(width[layers], 1, 1, norm=False))
        self.net = nn.Sequential(*mods)

    def conv(self, cin: int, cout: int, stride: int, norm: bool) -> nn.Module:
        """4x4 conv, padding 1; no bias before InstanceNorm (it would be subtracted away)."""
        layer = nn.Conv2d(cin, cout, KERNEL, stride=stride, padding=1, bias=self.spectral_norm or not norm)
        return sn(layer) if self.spectral_norm else layer

    def norm(self, channels: int) -> nn.Module:
        """InstanceNorm, or nothing when spectral norm already constrains every conv."""
        return nn.Identity() if self.spectral_norm else nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def stack_frames(seq: torch.Tensor) -> torch.Tensor:
    """(B, 3 frames, 3, H, W) -> (B, 9, H, W), frame 0 in channels 0..2: D_T's input."""
    if seq.dim() != 5 or seq.shape[1] != 3:
        raise ValueError(f"the temporal discriminator needs (B, 3 frames, C, H, W), got shape {tuple(seq.shape)}")
    return seq.flatten(1, 2)


def build_discriminators(*, kinds: list[str], channels: int, layers: int, spectral_norm: bool) -> nn.ModuleDict:
    """One PatchDiscriminator per entry of `kinds`: "spatial" (3 channels) and/or "temporal" (9)."""
    unknown = [k for k in kinds if k not in IN_CHANNELS]
    if unknown:
        raise ValueError(f"unknown discriminator kinds {unknown}; expected some of {list(IN_CHANNELS)}")
    return nn.ModuleDict({k: PatchDiscriminator(IN_CHANNELS[k], channels, layers, spectral_norm)
                          for k in kinds})
