"""Temporal consistency: does the output move (and flicker) like the ground truth does?

Notation: frames x_0..x_{T-1} of the output, g_t of the ground truth (GT); every metric averages
over the T-1 steps t = 1..T-1, and is NaN for clips of fewer than 2 frames.

TecoGAN metrics (Chu et al. 2020, as in `metrics.py` of thunil/TecoGAN):

* tOF = mean_t mean_p || OF(g_{t-1}, g_t)(p) - OF(x_{t-1}, x_t)(p) ||_2, where OF is OpenCV's
  Farneback flow on grey frames (cv2.COLOR_RGB2GRAY) with TecoGAN's parameters (pyr_scale 0.5,
  3 levels, window 15, 3 iterations, poly_n 5, poly_sigma 1.2), in pixels. Lower is better.
* tLP = mean_t | LPIPS(x_t, x_{t-1}) - LPIPS(g_t, g_{t-1}) |, LPIPS v0.1 AlexNet. Lower is better.

  Both are raw values: TecoGAN's tables show tOF x10 and tLP x100; we do not scale. TecoGAN's
  script also evaluates every metric (PSNR and LPIPS too) on a centred crop 16-47 px smaller
  in each dimension (`crop_8x8`) and skips the first and last 2 frames of each clip (its recurrent
  model's warm-up); we evaluate all metrics on every full frame instead, so the numbers are
  not comparable with TecoGAN's tables to the last digit.

Motion-compensated metrics (after the main paper's "temporal PSNR by aligning consecutive
frames based on estimated motion fields" and "SSIM across consecutive frames"). W warps frame
t-1 onto frame t with the backward flow b_t = OF(g_t, g_{t-1}) estimated on the *ground truth*,
so every method is aligned by the same motion: W(y_{t-1})(p) = y_{t-1}(p + b_t(p)), bilinear,
border padding (torch grid_sample).

* tPSNR = 10 log10(255^2 / MSE), MSE = mean over all t, pixels and channels of
  ((x_t - W(x_{t-1})) - (g_t - W(g_{t-1})))^2: the PSNR of the output's motion-compensated
  temporal change against the GT's. Pooling the MSE over the clip (instead of averaging
  per-step PSNRs) keeps it finite when single steps match exactly; only a clip whose temporal
  change matches everywhere gets +inf. Higher is better.
* tSSIM = mean_t SSIM(x_t, W(x_{t-1})) (SSIM as in `fidelity`): how well each output frame is
  predicted by its motion-compensated predecessor. Higher is steadier; occlusions keep even the
  ground truth below 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import lpips
import numpy as np
import torch

from vqe.metrics.fidelity import (
    batches,
    check_frames,
    check_pair,
    psnr_from_mse,
    resolve_device,
    ssim_tensor,
    to_numpy,
    to_tensor,
)
from vqe.metrics.flow import _farneback_all, _greys, flow_pair, warp
from vqe.metrics.perceptual import (
    Features,
    lpips_clip,
    lpips_from_features,
    lpips_model,
    tlp_from_steps,
)


def _aligned(frames: np.ndarray, flows_bwd: np.ndarray, device: torch.device,
             batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield batches of (x_t, W(x_{t-1})) for t = 1..T-1."""
    for s in batches(len(flows_bwd), batch_size):
        cur = to_tensor(frames[s.start + 1:s.stop + 1], device)
        prev = to_tensor(frames[s], device)
        yield cur, warp(prev, torch.from_numpy(flows_bwd[s]).to(device))


@dataclass(frozen=True)
class TemporalReference:
    """What the temporal metrics need from the ground truth alone, computed once per clip."""

    gt: np.ndarray
    flows_fwd: np.ndarray    # OF(g_{t-1}, g_t): tOF's target
    flows_bwd: np.ndarray    # OF(g_t, g_{t-1}): the warp W
    lpips_steps: np.ndarray  # LPIPS(g_t, g_{t-1}): tLP's target

    @classmethod
    def build(cls, gt: np.ndarray, model: lpips.LPIPS | None = None, batch_size: int = 8,
              gt_features: Sequence[Features] | None = None) -> TemporalReference:
        """`gt_features` (`perceptual.clip_features` of `gt`), when given, spares the LPIPS backbone pass."""
        check_frames(gt, "ground truth")
        if gt_features is None:
            steps = lpips_clip(gt, None, model, batch_size)[1]
        else:
            steps = lpips_from_features(gt_features, None, model if model is not None else lpips_model())[1]
        return cls(gt, *flow_pair(gt), steps)


def _undefined(out: np.ndarray, ref: TemporalReference) -> bool:
    check_pair(out, ref.gt)
    return len(out) < 2


def tof(out: np.ndarray, ref: TemporalReference) -> float:
    """TecoGAN's tOF, unscaled (pixels of flow difference per pixel); lower is better."""
    if _undefined(out, ref):
        return float("nan")
    g = _greys(out)
    steps = [np.linalg.norm(f - target, axis=-1).mean()
             for f, target in zip(_farneback_all(list(zip(g[:-1], g[1:]))), ref.flows_fwd)]
    return float(np.mean(steps))


def tlp(out: np.ndarray, ref: TemporalReference, model: lpips.LPIPS | None = None,
        batch_size: int = 8) -> float:
    """TecoGAN's tLP, unscaled (not x100); lower is better."""
    check_pair(out, ref.gt)
    return tlp_from_steps(lpips_clip(out, None, model, batch_size)[1], ref.lpips_steps)


@torch.inference_mode()
def tpsnr_tssim(out: np.ndarray, ref: TemporalReference, device: torch.device | str | None = None,
                batch_size: int = 8, *, want_tpsnr: bool = True, want_tssim: bool = True) -> tuple[float, float]:
    """(tPSNR, tSSIM) from one pass over the output's motion-compensated pairs (NaN for what is not wanted, and
    for clips of one frame): both need the same warps of the output."""
    if _undefined(out, ref):
        return float("nan"), float("nan")
    device = resolve_device(device)
    sq, n, steps = 0.0, 0, []
    gt_pairs = _aligned(ref.gt, ref.flows_bwd, device, batch_size) if want_tpsnr else None
    for x, wx in _aligned(out, ref.flows_bwd, device, batch_size):
        if gt_pairs is not None:
            g, wg = next(gt_pairs)
            d = (x - wx) - (g - wg)
            sq += float(d.double().square().sum())
            n += d.numel()
        if want_tssim:
            steps.append(ssim_tensor(x, wx))
    return (float(psnr_from_mse(sq / n)) if want_tpsnr else float("nan"),
            float(to_numpy(steps).mean()) if want_tssim else float("nan"))


def tpsnr(out: np.ndarray, ref: TemporalReference, device: torch.device | str | None = None,
          batch_size: int = 8) -> float:
    """PSNR of the motion-compensated temporal change against the GT's (MSE pooled over the clip)."""
    return tpsnr_tssim(out, ref, device, batch_size, want_tssim=False)[0]


def tssim(out: np.ndarray, ref: TemporalReference, device: torch.device | str | None = None,
          batch_size: int = 8) -> float:
    """Mean SSIM between each output frame and its predecessor warped by the GT motion."""
    return tpsnr_tssim(out, ref, device, batch_size, want_tpsnr=False)[1]
