"""Table 1's whole panel of metrics on one output: the per-frame scores and tLP (`vqe.metrics.reference`),
the flow-based temporal metrics (`temporal`: tPSNR, tSSIM, tOF), `vmaf` and `noref` (NIQE, a no-reference
score that Galteri et al. report; it ignores the ground truth).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from vqe.metrics import reference
from vqe.metrics.noref import MIN_SIDE as NIQE_MIN_SIDE
from vqe.metrics.noref import niqe_frames
from vqe.metrics.reference import FRAME_KEYS, TEMPORAL_KEYS, score_frames, score_runs
from vqe.metrics.temporal import TemporalReference, tof, tpsnr_tssim
from vqe.metrics.vmaf import vmaf as vmaf_score
from vqe.util.errors import VQEError

KEYS = ("psnr", "psnr_y", "ssim", "ms_ssim", "lpips", "tpsnr", "tssim", "tof", "tlp", "vmaf", "niqe")
__all__ = ["KEYS", "TEMPORAL_KEYS", "Reference", "measure", "measure_runs"]


class Reference(reference.Reference):
    """A ground-truth clip with what every metric of the panel needs from it alone: the per-frame
    references, and the GT's optical flows for the temporal metrics (built on first use)."""

    @functools.cached_property
    def temporal(self) -> TemporalReference:
        return TemporalReference.build(self.gt, self.lpips, self.batch_size, self.lpips_features)


def measure(out: np.ndarray, ref: Reference, *, vmaf: bool = True, keys: Sequence[str] = KEYS) -> dict[str, float]:
    """Clip-level scores of `out` against `ref`, for `keys` (default all of `KEYS`), as plain floats.

    NaN marks what is undefined (see `reference.score_frames`): VMAF under 17 px, NIQE under 192 px (two
    96-px patches), temporal metrics for single frames; VMAF is also NaN when `vmaf=False`.
    """
    unknown = set(keys) - set(KEYS)
    if unknown:
        raise VQEError(f"unknown metrics {sorted(unknown)}; use some of {KEYS}")
    scores = score_frames(out, ref, [k for k in keys if k in FRAME_KEYS])
    if ("tpsnr" in keys or "tssim" in keys) and len(out) > 1:  # one pass over the output's warps serves both
        tpsnr_value, tssim_value = tpsnr_tssim(out, ref.temporal, ref.device, ref.batch_size,
                                               want_tpsnr="tpsnr" in keys, want_tssim="tssim" in keys)
    metric: dict[str, Callable[[], float]] = {
        "tpsnr": lambda: tpsnr_value if len(out) > 1 else np.nan,
        "tssim": lambda: tssim_value if len(out) > 1 else np.nan,
        "tof": lambda: tof(out, ref.temporal) if len(out) > 1 else np.nan,
        "vmaf": lambda: vmaf_score(out, ref.gt, ref.fps)[0] if vmaf else np.nan,
        "niqe": lambda: niqe_frames(out) if min(out.shape[1:3]) >= NIQE_MIN_SIDE else np.nan,
    }
    scores.update({k: float(metric[k]()) for k in KEYS if k in keys and k not in FRAME_KEYS})
    return {k: scores[k] for k in KEYS if k in keys}


def measure_runs(outs: Sequence[np.ndarray], refs: Sequence[Reference], *, vmaf: bool = True,
                 keys: Sequence[str] = KEYS) -> dict[str, float]:
    """`measure` over a span made of runs of consecutive frames (see `reference.score_runs`)."""
    return score_runs(outs, refs, keys, score=functools.partial(measure, vmaf=vmaf))
