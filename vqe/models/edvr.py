"""EDVR (Wang et al., 2019), the "EDVR (retrained)" baseline of Table 1 (§IV-C).

The paper retrains EDVR on its own data for 2x up-scaling and denoising at once, so here it is an
ordinary vqe model (trained by the shared trainer, no external weights): per-frame features (conv +
residual blocks) -> 3-level feature pyramid -> PCD alignment of every frame onto the centre frame
(`vqe.models.parts.align.PCDAlign`, shared with Stage A) -> TSA fusion -> residual-block reconstruction trunk ->
pixel-shuffle up-sampling -> HR conv -> last conv, added to the up-sampled centre frame.

Defaults are EDVR-M (64 channels, 5 frames, 5 front and 10 back residual blocks, 8 deformable groups).
Deviations, for comparability with the rest of vqe rather than by choice of EDVR's authors: the base
image is bicubic (EDVR: bilinear), the last conv starts at zero so an untrained model returns that base
(the repo convention), and PCD is vqe's implementation (the same cascade, not EDVR's exact code).
As in EDVR, the centre frame is aligned onto itself too (Stage A passes it through instead), so TSA
weighs learned features of every frame alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.align import PCDAlign
from vqe.models.parts.blocks import upsampler
from vqe.models.parts.rrdb import ResidualBlock
from vqe.util.upscale import bicubic_up

LEVELS = 3  # EDVR's pyramid: full, 1/2 and 1/4 resolution
MULTIPLE = 2 ** (LEVELS - 1)  # input sizes are padded to this (the pyramid and TSA's two poolings)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class TSAFusion(nn.Module):
    """Temporal and spatial attention fusion (EDVR's TSA_Fusion): (B, T, C, H, W) -> (B, C, H, W).

    Temporal attention weighs each aligned frame per pixel by sigmoid(<theta(F_i), phi(F_ref)>), so frames
    that alignment could not match to the reference count less; spatial attention then modulates the
    fused map (multiplied and added) from a two-level max/avg-pooled pyramid, for a larger receptive field.
    H and W must be multiples of 4 (two poolings by 2).
    """

    def __init__(self, channels: int, frames: int, centre: int) -> None:
        super().__init__()
        c, self.centre = channels, centre
        self.temporal_attn1, self.temporal_attn2 = _conv(c, c), _conv(c, c)  # phi (reference), theta (all)
        self.feat_fusion = _conv(frames * c, c, 1)
        self.spatial_attn1, self.spatial_attn2 = _conv(frames * c, c, 1), _conv(2 * c, c, 1)
        self.spatial_attn3, self.spatial_attn4, self.spatial_attn5 = _conv(c, c), _conv(c, c, 1), _conv(c, c)
        self.spatial_attn_l1, self.spatial_attn_l2 = _conv(c, c, 1), _conv(2 * c, c)
        self.spatial_attn_l3 = _conv(c, c)
        self.spatial_attn_add1, self.spatial_attn_add2 = _conv(c, c, 1), _conv(c, c, 1)
        self.max_pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg_pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.act = nn.LeakyReLU(0.1)

    def temporal_weights(self, aligned: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) aligned features -> (B, T, H, W) per-pixel weights in (0, 1)."""
        b, t = aligned.shape[:2]
        ref = self.temporal_attn1(aligned[:, self.centre])
        emb = self.temporal_attn2(aligned.flatten(0, 1)).unflatten(0, (b, t))
        return torch.sigmoid((emb * ref.unsqueeze(1)).sum(2))

    def forward(self, aligned: torch.Tensor) -> torch.Tensor:
        weighted = (aligned * self.temporal_weights(aligned).unsqueeze(2)).flatten(1, 2)
        feat = self.act(self.feat_fusion(weighted))
        attn, attn_add = self._spatial(weighted)
        return feat * attn * 2 + attn_add  # sigmoid ~0.5 at the start: * 2 keeps feat's scale

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.max_pool(x), self.avg_pool(x)], 1)

    def _spatial(self, weighted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The multiplicative (sigmoid) and additive spatial attention maps, at the input size."""
        size = weighted.shape[-2:]
        attn = self.act(self.spatial_attn1(weighted))
        attn = self.act(self.spatial_attn2(self._pool(attn)))  # 1/2
        level = self.act(self.spatial_attn_l1(attn))
        level = self.act(self.spatial_attn_l2(self._pool(level)))  # 1/4
        level = _up(self.act(self.spatial_attn_l3(level)), attn.shape[-2:])
        attn = self.act(self.spatial_attn4(self.act(self.spatial_attn3(attn)) + level))
        attn = self.spatial_attn5(_up(attn, size))
        attn_add = self.spatial_attn_add2(self.act(self.spatial_attn_add1(attn)))
        return torch.sigmoid(attn), attn_add


def _up(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class EDVR(nn.Module):
    """x: (B, frames, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale)."""

    arch = "edvr"

    def __init__(self, scale: int = 2, *, channels: int = 64, frames: int = 5, front_blocks: int = 5,
                 back_blocks: int = 10, groups: int = 8, impl: str = "auto") -> None:
        super().__init__()
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"EDVR needs an odd number of frames, got {frames}")
        self.config = dict(channels=channels, frames=frames, front_blocks=front_blocks,
                           back_blocks=back_blocks, groups=groups)
        self.n, self.scale = frames // 2, scale
        c, act = channels, nn.LeakyReLU(0.1)
        self.extract = nn.Sequential(_conv(3, c), act, *(ResidualBlock(c) for _ in range(front_blocks)))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, stride=2, padding=1), act, _conv(c, c), act) for _ in range(LEVELS - 1))
        self.align = PCDAlign([c] * LEVELS, groups, impl=impl)
        self.fusion = TSAFusion(c, frames, self.n)
        self.trunk = nn.Sequential(*(ResidualBlock(c) for _ in range(back_blocks)))
        self.upsample = upsampler(c, scale)
        self.conv_hr, self.conv_last = _conv(c, c), _conv(c, 3)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = x.shape
        if t != 2 * self.n + 1:
            raise ValueError(f"EDVR expects windows of {2 * self.n + 1} frames, got {t}")
        feat = self.trunk(self.fusion(self.aligned(x)))
        feat = F.leaky_relu(self.conv_hr(self.upsample(feat)), 0.1)
        residual = self.conv_last(feat)[..., :h * self.scale, :w * self.scale]
        return bicubic_up(x[:, self.n], self.scale) + residual

    def aligned(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, h, w) -> every frame's features PCD-aligned onto the centre's: (B, T, C, H, W),
        H, W = h, w padded (replicate) up to the pyramid's multiple."""
        b, t, _, h, w = x.shape
        frames = F.pad(x.flatten(0, 1), (0, -w % MULTIPLE, 0, -h % MULTIPLE), mode="replicate")
        pyramid = [self.extract(frames)]
        for down in self.down:
            pyramid.append(down(pyramid[-1]))
        pyramid = [p.unflatten(0, (b, t)) for p in pyramid]
        nbr = [p.flatten(0, 1) for p in pyramid]  # all T frames in one batch, the centre included
        ref = [p[:, self.n].repeat_interleave(t, 0) for p in pyramid]
        return self.align(nbr, ref).unflatten(0, (b, t))

    def offset_mean(self) -> float:
        """The largest mean |offset| of the PCD levels in the last forward pass (EDVR's instability)."""
        return max(self.align.offset_means())

    def param_groups(self, lr: float, offset_lr_mult: float) -> list[dict]:
        """Optimiser groups: the deformable-offset convs learn at `lr * offset_lr_mult` (EDVR trains them slower)."""
        offset = {id(p) for m in self.align.offset_modules() for p in m.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) not in offset], "lr": lr},
                {"params": [p for p in self.parameters() if id(p) in offset], "lr": lr * offset_lr_mult}]
