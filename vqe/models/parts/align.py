"""PCD alignment (Pyramid, Cascading and Deformable convolution; EDVR), the paper's §III-A.

Each neighbour's features are warped onto the centre frame's. Offsets are estimated coarse to fine:
at every pyramid level from the neighbour/reference features and the up-sampled offsets of the
coarser level, so large motion is found where it is small in pixels; a final cascaded deformable
conv at full resolution refines the result. Deformable sampling (rather than one flow vector per pixel)
lets each output gather from several positions, which copes with occlusion and codec noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.dcn import ModulatedDeformConv2d


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


def _up(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size[-2:], mode="bilinear", align_corners=False)


class PCDAlign(nn.Module):
    """Align neighbour feature pyramids to the reference pyramid; `channels` lists finest..coarsest."""

    def __init__(self, channels: list[int], offset_groups: int = 8, offset_warn: float = 50.0,
                 impl: str = "auto") -> None:
        super().__init__()
        self.levels = len(channels)
        self.offset_conv1, self.offset_conv2, self.offset_conv3 = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.dcn, self.feat_conv = nn.ModuleList(), nn.ModuleList()
        for lvl, c in enumerate(channels):
            coarser = channels[lvl + 1] if lvl + 1 < self.levels else 0
            self.offset_conv1.append(_conv(2 * c, c))
            self.offset_conv2.append(_conv(c + coarser, c))
            self.offset_conv3.append(_conv(c, c) if coarser else nn.Identity())
            self.dcn.append(ModulatedDeformConv2d(c, c, offset_groups=offset_groups, offset_warn=offset_warn,
                                                  impl=impl))
            self.feat_conv.append(_conv(c + coarser, c) if coarser else nn.Identity())
        c = channels[0]
        self.cas_offset = nn.Sequential(_conv(2 * c, c), nn.LeakyReLU(0.1), _conv(c, c),
                                        nn.LeakyReLU(0.1))
        self.cas_dcn = ModulatedDeformConv2d(c, c, offset_groups=offset_groups, offset_warn=offset_warn, impl=impl)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, nbr: list[torch.Tensor], ref: list[torch.Tensor]) -> torch.Tensor:
        """`nbr`, `ref`: feature pyramids (finest first) of the neighbour and the centre frame."""
        offset = feat = None
        for lvl in reversed(range(self.levels)):
            off = self.act(self.offset_conv1[lvl](torch.cat([nbr[lvl], ref[lvl]], 1)))
            if offset is not None:  # cascade the coarser level's offset features (x2: pixels double)
                off = torch.cat([off, _up(offset, off.shape) * 2], 1)
            off = self.act(self.offset_conv3[lvl](self.act(self.offset_conv2[lvl](off))))
            aligned = self.dcn[lvl](nbr[lvl], off)
            if feat is not None:
                aligned = self.feat_conv[lvl](torch.cat([aligned, _up(feat, aligned.shape)], 1))
            feat = self.act(aligned) if lvl > 0 else aligned
            offset = off
        cas = self.cas_offset(torch.cat([feat, ref[0]], 1))
        return self.act(self.cas_dcn(feat, cas))

    def offset_modules(self) -> list[nn.Module]:
        """The convs that predict deformable offsets (for their own learning-rate multiplier)."""
        return [d.conv_offset for d in self.dcn] + [self.cas_dcn.conv_offset]

    def offset_means(self) -> list[float]:
        return [d.last_offset_mean for d in [*self.dcn, self.cas_dcn]]
