"""Optical flow on frames: OpenCV's Farneback with TecoGAN's parameters, and the backward warp.

The temporal metrics (tOF, tPSNR, tSSIM) measure with it, and the generator's flow-based temporal loss
(`vqe.losses`) aligns with it; neither depends on the other.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vqe.metrics.fidelity import check_frames

# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags: TecoGAN's metrics.py
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)
FLOW_THREADS = min(8, os.cpu_count() or 1)  # flows computed at once (`_farneback_all`)


def farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Flow f (H, W, 2) in pixels, (dx, dy), with prev(p) ~ nxt(p + f(p)); inputs are grey uint8."""
    return cv2.calcOpticalFlowFarneback(prev, nxt, None, *FARNEBACK)


def _greys(frames: np.ndarray) -> list[np.ndarray]:
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


def _farneback_all(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Farneback over many pairs, `FLOW_THREADS` at a time: OpenCV releases the GIL and one flow keeps about one
    core busy, so each core computes its own; the flows are the same as one by one."""
    if len(pairs) < 2:
        return [farneback(a, b) for a, b in pairs]
    with ThreadPoolExecutor(FLOW_THREADS) as pool:
        return list(pool.map(lambda p: farneback(*p), pairs))


def flows(frames: np.ndarray, *, backward: bool = False) -> np.ndarray:
    """(T-1, H, W, 2) flows OF(f_{t-1}, f_t), or OF(f_t, f_{t-1}) when `backward` (for warping)."""
    g = _greys(check_frames(frames))
    pairs = list(zip(g[1:], g[:-1]) if backward else zip(g[:-1], g[1:]))
    out = _farneback_all(pairs)
    return np.stack(out) if out else np.zeros((0, *frames.shape[1:3], 2), np.float32)


def flow_pair(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`flows(frames)`, `flows(frames, backward=True)`), computed together (one pool for both)."""
    g = _greys(check_frames(frames))
    fwd = list(zip(g[:-1], g[1:]))
    if not fwd:
        empty = np.zeros((0, *frames.shape[1:3], 2), np.float32)
        return empty, empty
    out = _farneback_all(fwd + [(b, a) for a, b in fwd])
    return np.stack(out[:len(fwd)]), np.stack(out[len(fwd):])


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample x (N, C, H, W) at p + flow(p) (flow (N, H, W, 2) in pixels), bilinear, border padding."""
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                            torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    gx = (xs + flow[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    warped = F.grid_sample(x, torch.stack((gx, gy), dim=-1), mode="bilinear", padding_mode="border",
                           align_corners=True)
    return warped.contiguous(memory_format=torch.channels_last)  # as `to_tensor`: SSIM's convs run faster
