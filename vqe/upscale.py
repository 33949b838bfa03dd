"""The project's one definition of "bicubic up-scale" and of turning model output into uint8 frames.

The compressed-input row of every table is the decoded frames up-scaled by `bicubic_frames`; every
model adds its learned residual to `bicubic_up` of its centre frame and is quantised by `to_uint8`.
Both go through the same torch operations, so a model whose residual is zero (every freshly
initialised model here) scores exactly the input row. FFmpeg's swscale bicubic (a = -0.6, fixed point)
scores ~0.01 dB differently from torch's (a = -0.75): a gap as large as the gains we measure, which is
why swscale is used only for down-scaling (the degradation) and for the Lanczos baseline.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vqe.errors import VQEError


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Frames (N, C, h, w) up-sampled `scale` times (torch bicubic, a = -0.75, no clamping)."""
    return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def to_uint8(y: torch.Tensor) -> torch.Tensor:
    """Float frames in [0, 1] (any shape) -> uint8 on the 0..255 scale, rounded to nearest."""
    return y.float().clamp(0, 1).mul(255).round().to(torch.uint8)


@torch.inference_mode()
def bicubic_frames(frames: np.ndarray, height: int, width: int, batch: int = 8) -> np.ndarray:
    """uint8 frames (T, h, w, 3) up-scaled by an integer factor to (T, height, width, 3) with `bicubic_up`."""
    t, h, w = frames.shape[:3]
    if (height, width) == (h, w):
        return np.asarray(frames)
    scale = height // h
    if scale < 1 or (h * scale, w * scale) != (height, width):
        raise VQEError(f"bicubic up-scale: {w}x{h} -> {width}x{height} is not one integer factor")
    out = np.empty((t, height, width, 3), np.uint8)
    for i in range(0, t, batch):
        x = torch.from_numpy(np.array(frames[i:i + batch])).permute(0, 3, 1, 2).float().div_(255)
        out[i:i + batch] = to_uint8(bicubic_up(x, scale)).permute(0, 2, 3, 1).numpy()
    return out
