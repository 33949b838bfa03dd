"""Training losses. Stage A (eq. 5): L1 + lambda_ssim * (1 - MS-SSIM), with pytorch-msssim.

MS-SSIM needs the smaller image side to exceed (win_size - 1) * 2^4 = 160 pixels (five scales with
an 11-tap window); on smaller training patches it falls back to single-scale SSIM, and says so once.
"""

from __future__ import annotations

import logging

import torch
from pytorch_msssim import ms_ssim, ssim
from torch import nn

log = logging.getLogger(__name__)
MS_SSIM_MIN_SIDE = (11 - 1) * 2 ** 4 + 1


def ssim_kind(height: int, width: int) -> str:
    """'ms-ssim' when the patch is large enough for five scales, else 'ssim'."""
    return "ms-ssim" if min(height, width) >= MS_SSIM_MIN_SIDE else "ssim"


class PixelLoss(nn.Module):
    """L1 + lambda * (1 - (MS-)SSIM) on images in [0, 1]."""

    def __init__(self, ssim_weight: float = 1.0) -> None:
        super().__init__()
        self.ssim_weight = ssim_weight
        self.kind: str | None = None

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = (out - target).abs().mean()
        if self.ssim_weight == 0:
            return loss
        kind = ssim_kind(*out.shape[-2:])
        if kind != self.kind:
            log.info("pixel loss: using %s for %dx%d patches", kind.upper(), out.shape[-1], out.shape[-2])
            self.kind = kind
        fn = ms_ssim if kind == "ms-ssim" else ssim
        similarity = fn(out.float(), target.float(), data_range=1.0, size_average=True)
        return loss + self.ssim_weight * (1 - similarity)
