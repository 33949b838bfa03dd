"""Scoring a restored clip against its ground truth.

Several methods are scored against the same ground truth, so `Reference(gt)` computes what
depends on the ground truth alone once (GT optical flows, LPIPS between consecutive GT frames)
and `measure(out, ref)` scores one output against it. Per-metric definitions live in
`fidelity` (PSNR, PSNR-Y, SSIM, MS-SSIM), `perceptual` (LPIPS), `temporal` (tPSNR, tSSIM, tOF,
tLP), `vmaf` and `noref` (NIQE, a no-reference score that Galteri et al. report; it ignores the ground truth).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from vqe.errors import VQEError
from vqe.metrics.fidelity import check_frames, check_pair, psnr, psnr_y, resolve_device, ssim, ssim_ms_ssim
from vqe.metrics.noref import MIN_SIDE as NIQE_MIN_SIDE
from vqe.metrics.noref import niqe_frames
from vqe.metrics.perceptual import Features, clip_features, lpips_clip, lpips_model
from vqe.metrics.temporal import TemporalReference, tlp_from_steps, tof, tpsnr_tssim
from vqe.metrics.vmaf import vmaf as vmaf_score

KEYS = ("psnr", "psnr_y", "ssim", "ms_ssim", "lpips", "tpsnr", "tssim", "tof", "tlp", "vmaf", "niqe")


TEMPORAL_KEYS = ("tpsnr", "tssim", "tof", "tlp")  # defined on consecutive pairs of a run
GT_FEATURES_MAX_BYTES = 1 << 30  # a Reference keeps the GT's LPIPS features up to this size, else recomputes them


class Reference:
    """A ground-truth clip (uint8 (T, H, W, 3), RGB) with its precomputed GT-only quantities.

    The GT-only quantities (LPIPS backbone features, optical flows, consecutive LPIPS) are built on first
    use, so scoring only per-frame metrics (training validation) never pays for the temporal ones, and
    every output scored against this reference reuses them.
    """

    def __init__(self, gt: np.ndarray, *, device: torch.device | str | None = None, fps: float = 25.0,
                 batch_size: int = 8) -> None:
        self.gt = check_frames(gt, "ground truth")
        self.device = resolve_device(device)
        self.fps = fps
        self.batch_size = batch_size
        self.lpips = lpips_model("alex", self.device)

    @functools.cached_property
    def lpips_features(self) -> list[Features] | None:
        """The GT's LPIPS backbone features, batched as `measure` batches the output; None (recompute them
        for each output, same values) when they would take more than `GT_FEATURES_MAX_BYTES`."""
        batches = clip_features(self.gt, self.lpips, self.batch_size)
        first = next(batches, None)
        if first is None:  # no frames
            return []
        per_frame = sum(f.numel() * f.element_size() for f in first) / len(first[0])
        if per_frame * len(self.gt) > GT_FEATURES_MAX_BYTES:
            return None
        return [first, *batches]

    @functools.cached_property
    def temporal(self) -> TemporalReference:
        return TemporalReference.build(self.gt, self.lpips, self.batch_size, self.lpips_features)


def measure(out: np.ndarray, ref: Reference, *, vmaf: bool = True,
            keys: Sequence[str] = KEYS) -> dict[str, float]:
    """Clip-level scores of `out` against `ref`, for `keys` (default all of `KEYS`), as plain floats.

    Per-frame metrics are averaged over frames (a frame identical to the GT has PSNR +inf, and
    so does the mean). NaN marks what is undefined: MS-SSIM for frames under 161 px on the short
    side, VMAF under 17 px, NIQE under 192 px (two 96-px patches), temporal metrics for single frames;
    VMAF is also NaN when `vmaf=False`.
    """
    check_pair(out, ref.gt)
    unknown = set(keys) - set(KEYS)
    if unknown:
        raise VQEError(f"unknown metrics {sorted(unknown)}; use some of {KEYS}")
    gt, dev, bs = ref.gt, ref.device, ref.batch_size
    if "lpips" in keys or "tlp" in keys:  # one backbone pass per frame serves both
        lpips_frames, lpips_steps = lpips_clip(out, gt, ref.lpips, bs, gt_features=ref.lpips_features)
    if "ms_ssim" in keys:  # MS-SSIM's finest scale is the SSIM pass: one pass serves both
        ssim_frames, ms_ssim_frames = ssim_ms_ssim(out, gt, dev, bs)
    if ("tpsnr" in keys or "tssim" in keys) and len(out) > 1:  # one pass over the output's warps serves both
        tpsnr_value, tssim_value = tpsnr_tssim(out, ref.temporal, dev, bs, want_tpsnr="tpsnr" in keys,
                                               want_tssim="tssim" in keys)
    metric: dict[str, Callable[[], float]] = {
        "psnr": lambda: psnr(out, gt).mean(),
        "psnr_y": lambda: psnr_y(out, gt).mean(),
        "ssim": lambda: (ssim_frames if "ms_ssim" in keys else ssim(out, gt, dev, bs)).mean(),
        "ms_ssim": lambda: ms_ssim_frames.mean(),
        "lpips": lambda: lpips_frames.mean(),
        "tpsnr": lambda: tpsnr_value if len(out) > 1 else np.nan,
        "tssim": lambda: tssim_value if len(out) > 1 else np.nan,
        "tof": lambda: tof(out, ref.temporal) if len(out) > 1 else np.nan,
        "tlp": lambda: tlp_from_steps(lpips_steps, ref.temporal.lpips_steps) if len(out) > 1 else np.nan,
        "vmaf": lambda: vmaf_score(out, gt, ref.fps)[0] if vmaf else np.nan,
        "niqe": lambda: niqe_frames(out) if min(out.shape[1:3]) >= NIQE_MIN_SIDE else np.nan,
    }
    return {k: float(metric[k]()) for k in KEYS if k in keys}


def measure_runs(outs: Sequence[np.ndarray], refs: Sequence[Reference], *, vmaf: bool = True,
                 keys: Sequence[str] = KEYS) -> dict[str, float]:
    """Scores of a span made of runs of consecutive frames (`outs[i]` against `refs[i]`).

    Per-frame metrics are the mean over every frame of the span; temporal ones the mean over every
    consecutive pair inside a run (runs are not joined to each other), NaN when no run has a pair.
    """
    if len(outs) != len(refs) or not outs:
        raise VQEError(f"measure_runs: {len(outs)} outputs for {len(refs)} references")
    scores = [measure(o, r, vmaf=vmaf, keys=keys) for o, r in zip(outs, refs)]
    merged = {}
    for k in scores[0]:
        weights = np.array([len(o) - 1 if k in TEMPORAL_KEYS else len(o) for o in outs], dtype=float)
        values = np.array([s[k] for s in scores])
        use = weights > 0
        merged[k] = float(np.average(values[use], weights=weights[use])) if use.any() else float("nan")
    return merged


def bpp(kbps: float, width: int, height: int, fps: float) -> float:
    """Bits per pixel of a stream at `kbps` kilobits per second: kbps * 1000 / (w * h * fps)."""
    return kbps * 1000.0 / (width * height * fps)


__all__ = ["KEYS", "TEMPORAL_KEYS", "Reference", "bpp", "measure", "measure_runs"]
