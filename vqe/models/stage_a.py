"""Stage A (§III-A/B): multi-frame distortion reduction, G_A(X_{t-N:t+N}).

Per-frame features -> feature pyramid -> PCD alignment of every neighbour onto frame t -> 1x1 fusion
of the 2N+1 aligned maps -> RRDB/ECBAM trunk -> (SRA: pixel-shuffle up-sampling) -> residual R_A,
added to a base image: the centre frame itself (PP, eq. 3) or its up-sampled version (SRA, eq. 4).
The last conv starts at zero, so an untrained model returns its base: training only ever learns a
correction, which is the "safe" behaviour the paper asks of Stage A.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn

from vqe.config import StageAModel
from vqe.models.align import PCDAlign
from vqe.models.rrdb import RRDB, ResidualBlock
from vqe.upscale import bicubic_up


class LearnedUpsample(nn.Module):
    """Depthwise transposed conv initialised to bilinear interpolation, then learned."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        k = 2 * scale
        self.up = nn.ConvTranspose2d(3, 3, k, stride=scale, padding=scale // 2, groups=3, bias=False)
        centre = (k - 1) / 2 if k % 2 else k / 2 - 0.5
        ramp = 1 - torch.abs(torch.arange(k) - centre) / scale
        self.up.weight.data.copy_((ramp[:, None] * ramp[None, :]).expand(3, 1, k, k))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = 1  # replicate the border so the transposed conv has full support at the edges
        y = self.up(F.pad(x, (pad,) * 4, mode="replicate"))
        return y[..., pad * self.scale:-pad * self.scale, pad * self.scale:-pad * self.scale]


def upsampler(channels: int, scale: int) -> nn.Sequential:
    """Pixel-shuffle steps (x2 each, or one x3) from trunk features to `scale` times their size."""
    if scale == 1:
        return nn.Sequential()
    steps = [3] if scale == 3 else [2] * int(math.log2(scale))
    layers: list[nn.Module] = []
    for s in steps:
        layers += [nn.Conv2d(channels, channels * s * s, 3, padding=1), nn.PixelShuffle(s), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers)


class StageA(nn.Module):
    """x: (B, 2n+1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale)."""

    arch = "stage_a"

    def __init__(self, cfg: StageAModel, scale: int = 1, impl: str = "auto") -> None:
        super().__init__()
        self.config = asdict(cfg)
        self.n = cfg.n
        self.scale = scale if cfg.mode == "sra" else 1
        chans, c = cfg.align_channels, cfg.channels
        self.multiple = 2 ** (len(chans) - 1)  # input sizes are padded to this for the pyramid
        act = nn.LeakyReLU(0.1, inplace=True)
        self.extract = nn.Sequential(nn.Conv2d(3, chans[0], 3, padding=1), act,
                                     *(ResidualBlock(chans[0]) for _ in range(cfg.extract_blocks)))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), act, nn.Conv2d(cout, cout, 3, padding=1), act)
            for cin, cout in zip(chans[:-1], chans[1:]))
        self.align = PCDAlign(chans, cfg.offset_groups, cfg.offset_warn, impl)
        self.fusion = nn.Conv2d((2 * cfg.n + 1) * chans[0], c, 1)
        self.trunk = nn.Sequential(*(RRDB(c, cfg.growth, cfg.attention) for _ in range(cfg.blocks)))
        self.trunk_conv = nn.Conv2d(c, c, 3, padding=1)
        self.upsample = upsampler(c, self.scale)
        self.conv_hr = nn.Conv2d(c, c, 3, padding=1)
        self.conv_last = nn.Conv2d(c, 3, 3, padding=1)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)
        self.base_up = LearnedUpsample(self.scale) if cfg.base == "learned" and self.scale > 1 else None

    def base(self, centre: torch.Tensor) -> torch.Tensor:
        """X_t (PP) or X_t up-sampled by `scale` (SRA): what the residual is added to."""
        return self.base_up(centre) if self.base_up is not None else bicubic_up(centre, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = x.shape
        if t != 2 * self.n + 1:
            raise ValueError(f"Stage A expects windows of {2 * self.n + 1} frames, got {t}")
        centre = x[:, self.n]
        ph, pw = -h % self.multiple, -w % self.multiple
        frames = F.pad(x.flatten(0, 1), (0, pw, 0, ph), mode="replicate") if ph or pw else x.flatten(0, 1)
        pyramid = [self.extract(frames)]
        for down in self.down:
            pyramid.append(down(pyramid[-1]))
        pyramid = [p.unflatten(0, (b, t)) for p in pyramid]
        ref = [p[:, self.n] for p in pyramid]
        aligned = [ref[0]] * t  # F_{t->t} is frame t's own features
        if t > 1:  # all 2n neighbours in one batch
            others = [i for i in range(t) if i != self.n]
            nbr = [p[:, others].flatten(0, 1) for p in pyramid]
            refs = [r.repeat_interleave(len(others), 0) for r in ref]
            out = self.align(nbr, refs).unflatten(0, (b, len(others)))
            for j, i in enumerate(others):
                aligned[i] = out[:, j]
        feat = self.fusion(torch.cat(aligned, 1))
        feat = feat + self.trunk_conv(self.trunk(feat))
        residual = self.conv_last(F.leaky_relu(self.conv_hr(self.upsample(feat)), 0.2))
        return self.base(centre) + residual[..., :h * self.scale, :w * self.scale]

    def param_groups(self, lr: float, offset_lr_mult: float) -> list[dict]:
        """Optimiser groups: the deformable-offset convs may learn at a different rate (EDVR)."""
        offset = {id(p) for m in self.align.offset_modules() for p in m.parameters()}
        rest = [p for p in self.parameters() if id(p) not in offset]
        groups = [{"params": rest, "lr": lr}]
        if offset:
            groups.append({"params": [p for p in self.parameters() if id(p) in offset], "lr": lr * offset_lr_mult})
        return groups
