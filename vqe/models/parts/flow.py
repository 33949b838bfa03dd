"""Dense optical flow: backward warping and flow up-sampling, shared by the flow-based baselines (TecoGAN's FNet,
MFQE 2.0's motion compensation).

Flow convention: (N, 2, H, W), channel 0 = x (horizontal), channel 1 = y, in pixels;
warp(img, f)[y, x] = img[y + f_y, x + f_x], bilinear, the border replicated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image (N, C, H, W), flow (N, 2, H, W) (x, y in pixels) -> out[y, x] = image[y + f_y, x + f_x], bilinear,
    the border replicated outside the image."""
    _, _, h, w = image.shape
    ys = torch.arange(h, dtype=image.dtype, device=image.device).view(h, 1)
    xs = torch.arange(w, dtype=image.dtype, device=image.device).view(1, w)
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1  # align_corners=True: -1 and 1 are the corner pixels' centres
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack((gx, gy), -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def upscale_flow(flow: torch.Tensor, scale: int) -> torch.Tensor:
    """LR flow (N, 2, h, w) -> HR flow (N, 2, h*scale, w*scale): bilinear, displacements times `scale`."""
    if scale == 1:
        return flow
    return F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=False) * scale
