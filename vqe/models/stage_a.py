"""Stage A (§III-A/B): multi-frame distortion reduction, G_A(X_{t-N:t+N}).

The paper's model (`align: pcd, block: rrdb, tail: hr`): per-frame features -> feature pyramid -> PCD
alignment of every neighbour onto frame t -> 1x1 fusion of the 2N+1 aligned maps -> RRDB/ECBAM trunk ->
(SRA: pixel-shuffle up-sampling, then convs at the output size) -> residual R_A, added to a base image:
the centre frame itself (PP, eq. 3) or its up-sampled version (SRA, eq. 4).

The CPU-efficient recipe of the scaling study swaps each part for a cheaper one: `align: stack` feeds
the 2N+1 frames stacked on channels to one conv (early fusion, no deformable sampling), `block: residual`
uses conv-ReLU-conv blocks, and `tail: shuffle` ends with one conv to 3*scale^2 channels and a pixel
shuffle, so every conv runs at the decoded size.

The last conv starts at zero, so an untrained model returns its base: training only ever learns a
correction, which is the "safe" behaviour the paper asks of Stage A.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.align import PCDAlign
from vqe.models.parts.blocks import upsampler
from vqe.models.parts.rrdb import RRDB, ResidualBlock
from vqe.util.upscale import bicubic_up


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


class StageA(nn.Module):
    """x: (B, 2n+1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale)."""

    arch = "stage_a"

    def __init__(self, *, mode: str, n: int, align: str, block: str, tail: str, align_channels: list[int],
                 offset_groups: int, extract_blocks: int, channels: int, blocks: int, growth: int, attention: bool,
                 base: str, offset_warn: float, scale: int = 1, impl: str = "auto") -> None:
        """The keys are `stage_a.model`'s (`vqe.config.StageAModel` says what each means)."""
        super().__init__()
        self.config = dict(mode=mode, n=n, align=align, block=block, tail=tail, align_channels=list(align_channels),
                           offset_groups=offset_groups, extract_blocks=extract_blocks, channels=channels,
                           blocks=blocks, growth=growth, attention=attention, base=base, offset_warn=offset_warn)
        self.n = n
        self.scale = scale if mode == "sra" else 1
        chans, c = align_channels, channels
        act = nn.LeakyReLU(0.1, inplace=True)
        t = 2 * n + 1
        self.align: Optional[PCDAlign] = None
        if align == "pcd":
            self.multiple = 2 ** (len(chans) - 1)  # input sizes are padded to this for the pyramid
            self.extract = nn.Sequential(nn.Conv2d(3, chans[0], 3, padding=1), act,
                                         *(ResidualBlock(chans[0]) for _ in range(extract_blocks)))
            self.down = nn.ModuleList(
                nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), act, nn.Conv2d(cout, cout, 3, padding=1), act)
                for cin, cout in zip(chans[:-1], chans[1:]))
            self.align = PCDAlign(chans, offset_groups, offset_warn, impl)
            self.fusion = nn.Conv2d(t * chans[0], c, 1)
        else:  # stack: one conv over the 2n+1 frames on channels
            self.multiple = 1
            self.fusion = nn.Conv2d(t * 3, c, 3, padding=1)
        make_block = (lambda: RRDB(c, growth, attention)) if block == "rrdb" else (lambda: ResidualBlock(c, attention))
        self.trunk = nn.Sequential(*(make_block() for _ in range(blocks)))
        self.trunk_conv = nn.Conv2d(c, c, 3, padding=1)
        if tail == "hr":
            self.upsample = upsampler(c, self.scale)
            self.conv_hr: Optional[nn.Conv2d] = nn.Conv2d(c, c, 3, padding=1)
            self.conv_last = nn.Conv2d(c, 3, 3, padding=1)
        else:  # shuffle: the residual is computed at the decoded size and pixel-shuffled up
            self.upsample, self.conv_hr = nn.Sequential(), None
            self.conv_last = nn.Sequential(nn.Conv2d(c, 3 * self.scale ** 2, 3, padding=1), nn.PixelShuffle(self.scale))
        last = self.conv_last if tail == "hr" else self.conv_last[0]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.base_up = LearnedUpsample(self.scale) if base == "learned" and self.scale > 1 else None

    def base(self, centre: torch.Tensor) -> torch.Tensor:
        """X_t (PP) or X_t up-sampled by `scale` (SRA): what the residual is added to."""
        return self.base_up(centre) if self.base_up is not None else bicubic_up(centre, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = x.shape
        if t != 2 * self.n + 1:
            raise ValueError(f"Stage A expects windows of {2 * self.n + 1} frames, got {t}")
        centre = x[:, self.n]
        feat = self.fusion(self._aligned(x) if self.align is not None else x.flatten(1, 2))
        feat = feat + self.trunk_conv(self.trunk(feat))
        feat = self.upsample(feat)
        if self.conv_hr is not None:
            feat = F.leaky_relu(self.conv_hr(feat), 0.2)
        residual = self.conv_last(feat)
        return self.base(centre) + residual[..., :h * self.scale, :w * self.scale]

    def _aligned(self, x: torch.Tensor) -> torch.Tensor:
        """PCD: every frame's features aligned onto the centre frame's, concatenated on channels."""
        b, t, _, h, w = x.shape
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
        return torch.cat(aligned, 1)

    def offset_mean(self) -> float:
        """The largest mean |offset| of the PCD levels (0 without alignment), logged against instability."""
        return max(self.align.offset_means()) if self.align is not None else 0.0

    def param_groups(self, lr: float, offset_lr_mult: float) -> list[dict]:
        """Optimiser groups: the deformable-offset convs may learn at a different rate (EDVR)."""
        modules = self.align.offset_modules() if self.align is not None else []
        offset = {id(p) for m in modules for p in m.parameters()}
        rest = [p for p in self.parameters() if id(p) not in offset]
        groups = [{"params": rest, "lr": lr}]
        if offset:
            groups.append({"params": [p for p in self.parameters() if id(p) in offset], "lr": lr * offset_lr_mult})
        return groups
