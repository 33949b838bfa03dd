"""Scoring a restored clip against its ground truth.

Several methods are scored against the same ground truth, so `Reference(gt)` computes what
depends on the ground truth alone once (GT optical flows, LPIPS between consecutive GT frames)
and `measure(out, ref)` scores one output against it. Per-metric definitions live in
`fidelity` (PSNR, PSNR-Y, SSIM, MS-SSIM), `perceptual` (LPIPS), `temporal` (tPSNR, tSSIM, tOF,
tLP) and `vmaf`.
"""

from __future__ import annotations

import numpy as np
import torch

from vqe.metrics.fidelity import check_frames, check_pair, ms_ssim, psnr, psnr_y, resolve_device, ssim
from vqe.metrics.perceptual import lpips_clip, lpips_model
from vqe.metrics.temporal import TemporalReference, tlp_from_steps, tof, tpsnr, tssim
from vqe.metrics.vmaf import vmaf as vmaf_score

KEYS = ("psnr", "psnr_y", "ssim", "ms_ssim", "lpips", "tpsnr", "tssim", "tof", "tlp", "vmaf")


class Reference:
    """A ground-truth clip (uint8 (T, H, W, 3), RGB) with its precomputed GT-only quantities."""

    def __init__(self, gt: np.ndarray, *, device: torch.device | str | None = None, fps: float = 25.0,
                 batch_size: int = 8) -> None:
        self.gt = check_frames(gt, "ground truth")
        self.device = resolve_device(device)
        self.fps = fps
        self.batch_size = batch_size
        self.lpips = lpips_model("alex", self.device)
        self.temporal = TemporalReference.build(gt, self.lpips, batch_size)


def measure(out: np.ndarray, ref: Reference, *, vmaf: bool = True) -> dict[str, float]:
    """Clip-level scores of `out` against `ref`, keyed by `KEYS`, as plain floats.

    Per-frame metrics are averaged over frames (a frame identical to the GT has PSNR +inf, and
    so does the mean). NaN marks what is undefined: MS-SSIM for frames under 161 px on the short
    side, VMAF under 17 px, temporal metrics for single frames; VMAF is also NaN when `vmaf=False`.
    """
    check_pair(out, ref.gt)
    gt, dev, bs, tref = ref.gt, ref.device, ref.batch_size, ref.temporal
    lpips_frames, lpips_steps = lpips_clip(out, gt, ref.lpips, bs)  # one backbone pass per frame
    scores = {
        "psnr": psnr(out, gt).mean(),
        "psnr_y": psnr_y(out, gt).mean(),
        "ssim": ssim(out, gt, dev, bs).mean(),
        "ms_ssim": ms_ssim(out, gt, dev, bs).mean(),
        "lpips": lpips_frames.mean(),
        "tpsnr": tpsnr(out, tref, dev, bs),
        "tssim": tssim(out, tref, dev, bs),
        "tof": tof(out, tref),
        "tlp": tlp_from_steps(lpips_steps, tref.lpips_steps),
        "vmaf": vmaf_score(out, gt, ref.fps)[0] if vmaf else np.nan,
    }
    return {k: float(scores[k]) for k in KEYS}


def bpp(kbps: float, width: int, height: int, fps: float) -> float:
    """Bits per pixel of a stream at `kbps` kilobits per second: kbps * 1000 / (w * h * fps)."""
    return kbps * 1000.0 / (width * height * fps)


__all__ = ["KEYS", "Reference", "bpp", "measure"]
