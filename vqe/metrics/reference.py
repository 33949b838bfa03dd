"""A ground-truth clip and the per-frame scores of an output against it (PSNR, PSNR-Y, SSIM, MS-SSIM,
LPIPS) plus tLP, the one temporal score that needs no optical flow.

Several outputs are scored against the same ground truth, so `Reference(gt)` keeps what depends on the
ground truth alone (its LPIPS backbone features, the LPIPS between its consecutive frames) and
`score_frames(out, ref)` scores one output against it. Training validation scores with this module alone;
Table 1's whole panel (`vqe.metrics.panel`) adds the flow-based temporal metrics, VMAF and NIQE.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from vqe.metrics.fidelity import (
    check_frames,
    check_pair,
    psnr,
    psnr_y,
    resolve_device,
    ssim,
    ssim_ms_ssim,
)
from vqe.metrics.perceptual import (
    Features,
    clip_features,
    lpips_clip,
    lpips_from_features,
    lpips_model,
    tlp_from_steps,
)
from vqe.util.errors import VQEError

FRAME_KEYS = ("psnr", "psnr_y", "ssim", "ms_ssim", "lpips", "tlp")
TEMPORAL_KEYS = ("tpsnr", "tssim", "tof", "tlp")  # defined on consecutive pairs of a run
GT_FEATURES_MAX_BYTES = 1 << 30  # a Reference keeps the GT's LPIPS features up to this size, else recomputes them


class Reference:
    """A ground-truth clip (uint8 (T, H, W, 3), RGB) with its precomputed GT-only quantities.

    They are built on first use, so scoring only per-frame metrics never pays for the others, and every
    output scored against this reference reuses them.
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
        """The GT's LPIPS backbone features, batched as the output is batched; None (recompute them
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
    def lpips_steps(self) -> np.ndarray:
        """LPIPS(g_t, g_{t-1}) for t >= 1: tLP's target."""
        if self.lpips_features is None:
            return lpips_clip(self.gt, None, self.lpips, self.batch_size)[1]
        return lpips_from_features(self.lpips_features, None, self.lpips)[1]


def score_frames(out: np.ndarray, ref: Reference, keys: Sequence[str] = FRAME_KEYS) -> dict[str, float]:
    """Clip-level scores of `out` against `ref` for `keys` (of `FRAME_KEYS`), as plain floats.

    Per-frame metrics are averaged over frames (a frame identical to the GT has PSNR +inf, and so does
    the mean). NaN marks what is undefined: MS-SSIM for frames under 161 px on the short side, tLP for
    single frames.
    """
    check_pair(out, ref.gt)
    unknown = set(keys) - set(FRAME_KEYS)
    if unknown:
        raise VQEError(f"unknown per-frame metrics {sorted(unknown)}; use some of {FRAME_KEYS}")
    gt, dev, bs = ref.gt, ref.device, ref.batch_size
    if "lpips" in keys or "tlp" in keys:  # one backbone pass per frame serves both
        lpips_frames, lpips_steps = lpips_clip(out, gt, ref.lpips, bs, gt_features=ref.lpips_features)
    if "ms_ssim" in keys:  # MS-SSIM's finest scale is the SSIM pass: one pass serves both
        ssim_frames, ms_ssim_frames = ssim_ms_ssim(out, gt, dev, bs)
    metric: dict[str, Callable[[], float]] = {
        "psnr": lambda: psnr(out, gt).mean(),
        "psnr_y": lambda: psnr_y(out, gt).mean(),
        "ssim": lambda: (ssim_frames if "ms_ssim" in keys else ssim(out, gt, dev, bs)).mean(),
        "ms_ssim": lambda: ms_ssim_frames.mean(),
        "lpips": lambda: lpips_frames.mean(),
        "tlp": lambda: tlp_from_steps(lpips_steps, ref.lpips_steps) if len(out) > 1 else np.nan,
    }
    return {k: float(metric[k]()) for k in FRAME_KEYS if k in keys}


def score_runs(outs: Sequence[np.ndarray], refs: Sequence[Reference], keys: Sequence[str] = FRAME_KEYS, *,
               score: Callable[..., dict[str, float]] = score_frames) -> dict[str, float]:
    """Scores of a span made of runs of consecutive frames (`outs[i]` against `refs[i]`, each scored by
    `score(out, ref, keys)`).

    Per-frame metrics are the mean over every frame of the span; temporal ones the mean over every
    consecutive pair inside a run (runs are not joined to each other), NaN when no run has a pair.
    """
    if len(outs) != len(refs) or not outs:
        raise VQEError(f"score_runs: {len(outs)} outputs for {len(refs)} references")
    scores = [score(o, r, keys=keys) for o, r in zip(outs, refs)]
    merged = {}
    for k in scores[0]:
        weights = np.array([len(o) - 1 if k in TEMPORAL_KEYS else len(o) for o in outs], dtype=float)
        values = np.array([s[k] for s in scores])
        use = weights > 0
        merged[k] = float(np.average(values[use], weights=weights[use])) if use.any() else float("nan")
    return merged
