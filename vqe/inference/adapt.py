"""Test-time adaptation: the user's own video teaches the model, with no ground truth at all.

Why: the content of the video being restored teaches more than any training set we can ship (an
independent probe gained +0.10 dB at 62.5 kbps from scratch in 3 minutes, DESIGN §5). Pairs come from
the input itself. Its decoded frames D (what the model reads) are down-scaled by the model's scale and
re-encoded with H.264 at the input's own bits per pixel (measured from its packets), giving D'. The model is
fine-tuned to map windows of D' to frames of D: the same degradation, one scale down.

Trained long, that mapping over-fits (the probe's gain fell to −0.11 dB by 7 minutes). So the last frames of
D are held out: every `eval_every` seconds the model is scored on the held-out pairs (PSNR of its output
against D, minus that of the bicubic up-scaled D'), and the state with the best hold-out gain is the one
returned. The unadapted model is the first candidate, so adaptation can only be kept when the hold-out says
it helps.

A model trained for LPIPS (GAN-EVH, the fast restorer) loses what it was trained for when it adapts on L1
alone: the GAN-EVH release adapted 40 s per encode gave back 0.06-0.08 of its 0.09 LPIPS gain. With
`perceptual` > 0 (opt-in: `vqe enhance --adapt-lpips W`) the loss is L1 + W x LPIPS-alex, and the hold-out
keeps the state of lowest LPIPS instead: a perceptual adaptation, which trades PSNR for LPIPS
(results/benchmarks/adapt_*_lpips*.json).
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vqe.data.codec import EncodeSettings, encode_at_rate, frame_packets
from vqe.data.dataset import augment, to_tensor, window_indices
from vqe.data.degrade import downscale
from vqe.data.video import probe, read_video
from vqe.inference.enhance import model_geometry, restore_span
from vqe.losses import LpipsLoss
from vqe.metrics.fidelity import psnr
from vqe.metrics.perceptual import lpips_clip, lpips_model
from vqe.util.errors import VQEError
from vqe.util.upscale import bicubic_frames

log = logging.getLogger(__name__)


@dataclass
class AdaptReport:
    """What adaptation did: the hold-out curve and the state kept (iteration 0 = the model as given)."""

    seconds: float
    iterations: int
    bpp: float  # bits per pixel of the input, matched by the re-encode
    reencode_kbps: float
    holdout_frames: int
    kept_iteration: int
    kept_gain: float  # hold-out gain of the kept state over bicubic(D'), dB
    curve: list[dict[str, float]] = field(default_factory=list)  # {iteration, seconds, holdout_gain, holdout_lpips}
    perceptual: float = 0.0  # weight of LPIPS-alex in the adaptation loss (0: L1 alone)


def self_pairs(decoded: np.ndarray, scale: int, bpp: float, fps: float, codec: str = "libx264",
               preset: str = "veryfast") -> np.ndarray:
    """D' for the decoded frames D: down-scaled by `scale`, encoded at `bpp` bits per pixel, decoded.

    The size is cropped to a multiple of 2 x scale (4:2:0 at the smaller size); callers crop D to match."""
    t, h, w = decoded.shape[:3]
    m = 2 * scale
    h2, w2 = h - h % m, w - w % m
    if h2 < 4 * m or w2 < 4 * m:
        raise VQEError(f"adaptation: frames of {w}x{h} are too small to down-scale by {scale}")
    small = downscale(np.ascontiguousarray(decoded[:, :h2, :w2]), scale)
    kbps = bpp * small.shape[1] * small.shape[2] * fps / 1000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "self.mkv"
        encode_at_rate(small, path, EncodeSettings(codec=codec, kbps=kbps, preset=preset, fps=fps), 0.1)
        out = read_video(path)
    if len(out) != t:
        raise VQEError(f"adaptation: the re-encode decoded {len(out)} frames, expected {t}")
    return out


def centre_crop(lq: np.ndarray, target: np.ndarray, size: Optional[int], scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The central `size` x `size` pixels of every LQ frame and the matching `scale`x larger target region."""
    if size is None:
        return lq, target
    ch, cw = min(size, lq.shape[1]), min(size, lq.shape[2])
    y0, x0 = (lq.shape[1] - ch) // 2, (lq.shape[2] - cw) // 2
    return (lq[:, y0:y0 + ch, x0:x0 + cw],
            target[:, y0 * scale:(y0 + ch) * scale, x0 * scale:(x0 + cw) * scale])


def holdout_scores(model: torch.nn.Module, lq: np.ndarray, target: np.ndarray, frames: list[int],
                   device: torch.device, base: np.ndarray, lpips: bool = False) -> dict[str, float]:
    """On the held-out pairs: the mean PSNR gain of the model's output over `base` (bicubic of the D'
    frames) against D, and with `lpips` its mean LPIPS-alex against D (scored only when it decides)."""

    out = np.concatenate([restore_span(model, lq, t, 1, batch=1, device=device) for t in frames])
    scores = {"holdout_gain": float(psnr(out, target[frames]).mean() - psnr(base, target[frames]).mean())}
    if lpips:
        scores["holdout_lpips"] = float(lpips_clip(out, target[frames], lpips_model("alex", device))[0].mean())
    return scores


def holdout_gain(model: torch.nn.Module, lq: np.ndarray, target: np.ndarray, frames: list[int],
                 device: torch.device, base: np.ndarray) -> float:
    """Mean PSNR gain of the model's output over `base` (bicubic of the held-out D' frames) against D."""
    return holdout_scores(model, lq, target, frames, device, base)["holdout_gain"]


def adapt(model: torch.nn.Module, decoded: np.ndarray, *, bpp: float, fps: float, seconds: float,
          lr: float = 1e-4, batch: int = 8, patch: int = 48, holdout: float = 0.25, holdout_crop: Optional[int] = 96,
          eval_every: float = 20.0, perceptual: float = 0.0,
          seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
          on_eval: Optional[Callable[[torch.nn.Module], dict[str, float]]] = None) -> tuple[torch.nn.Module, AdaptReport]:
    """Fine-tune `model` on the input's own (D', D) pairs for `seconds`; returns the best hold-out state.

    `decoded` are the frames the model reads (uint8, T x h x w x 3); `patch` is the LQ patch size in D'
    pixels. The hold-out is scored on the central `holdout_crop` x `holdout_crop` D' pixels of its frames (None:
    whole frames): on 180p input that is a sixth of the cost, so the budget goes to learning, not to scoring.
    `perceptual`: weight of LPIPS-alex in the loss; when > 0 the hold-out keeps the state of lowest LPIPS.
    Deterministic for a seed except for the wall-clock budget (how many steps fit). `on_eval(model)`
    adds its scores to every curve point (a benchmark's true gain against ground truth; not timed)."""
    n, scale = model_geometry(model)
    if scale < 2:
        raise VQEError("adaptation needs an up-scaling model (scale >= 2): the pairs are made one scale down")
    if seconds <= 0:
        raise VQEError(f"adaptation budget must be > 0 seconds, got {seconds}")
    if perceptual < 0:
        raise VQEError(f"adaptation: the LPIPS weight must be >= 0, got {perceptual}")
    device = torch.device(device)
    t0 = time.perf_counter()
    lq = self_pairs(decoded, scale, bpp, fps)
    h, w = lq.shape[1] * scale, lq.shape[2] * scale
    target = np.ascontiguousarray(decoded[:, :h, :w])
    frames = len(target)
    n_hold = max(1, int(round(holdout * frames)))
    if frames - n_hold < 1:
        raise VQEError(f"adaptation: {frames} frames are too few to hold out {n_hold}")
    hold = list(range(frames - n_hold, frames))
    train_frames = frames - n_hold
    p = min(patch, lq.shape[1], lq.shape[2])
    lq_hold, target_hold = centre_crop(lq, target, holdout_crop, scale)
    base = bicubic_frames(lq_hold[hold], target_hold.shape[1], target_hold.shape[2])

    model = model.to(device)
    model.eval()
    best_state = copy.deepcopy(model.state_dict())
    given = holdout_scores(model, lq_hold, target_hold, hold, device, base, lpips=perceptual > 0)
    kept = given
    report = AdaptReport(0.0, 0, bpp, 0.0, n_hold, 0, given["holdout_gain"],
                         [{"iteration": 0, "seconds": time.perf_counter() - t0, **given}], perceptual)
    lpips_loss = LpipsLoss("alex") if perceptual > 0 else None
    t_eval = time.perf_counter()
    report.curve[0].update(on_eval(model) if on_eval else {})
    paused = time.perf_counter() - t_eval
    opt = torch.optim.Adam(model.parameters(), lr)
    rng = np.random.default_rng(seed)
    it, last_eval = 0, time.perf_counter()
    bar = tqdm(total=round(seconds), desc="adapt", unit="s", disable=not progress)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train()
        xs, ys = [], []
        for _ in range(batch):
            t = int(rng.integers(train_frames))
            y0, x0 = int(rng.integers(lq.shape[1] - p + 1)), int(rng.integers(lq.shape[2] - p + 1))
            win = lq[window_indices(t, n, frames), y0:y0 + p, x0:x0 + p]
            gt = target[t, y0 * scale:(y0 + p) * scale, x0 * scale:(x0 + p) * scale]
            win, gt = augment(win, gt, rng)
            xs.append(to_tensor(win))
            ys.append(to_tensor(gt))
        out, gt = model(torch.stack(xs).to(device)), torch.stack(ys).to(device)
        loss = F.l1_loss(out, gt) + (perceptual * lpips_loss(out, gt) if lpips_loss else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        now = time.perf_counter()
        bar.n = min(round(now - start), round(seconds))
        bar.refresh()
        if now - last_eval >= eval_every or now - start >= seconds:
            model.eval()
            scores = holdout_scores(model, lq_hold, target_hold, hold, device, base, lpips=perceptual > 0)
            report.curve.append({"iteration": it, "seconds": time.perf_counter() - t0 - paused, **scores})
            if on_eval:
                t_eval = time.perf_counter()
                report.curve[-1].update(on_eval(model))
                paused += time.perf_counter() - t_eval  # the benchmark's scoring is not the model's budget
                start += time.perf_counter() - t_eval
            if _better(scores, kept, perceptual > 0):
                kept, best_state, report.kept_iteration = scores, copy.deepcopy(model.state_dict()), it
            last_eval = time.perf_counter()
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    best_gain = kept["holdout_gain"]
    report.seconds, report.iterations, report.kept_gain = time.perf_counter() - t0 - paused, it, best_gain
    report.reencode_kbps = bpp * lq.shape[1] * lq.shape[2] * fps / 1000
    log.info("adapt: %d iterations in %.0f s; kept iteration %d (hold-out gain %+.3f dB)", it, report.seconds,
             report.kept_iteration, best_gain)
    return model, report


def _better(scores: dict[str, float], kept: dict[str, float], perceptual: bool) -> bool:
    """The hold-out rule: the higher PSNR gain, or with a perceptual loss the lower LPIPS."""
    if perceptual:
        return scores["holdout_lpips"] < kept["holdout_lpips"]
    return scores["holdout_gain"] > kept["holdout_gain"]


def input_bpp(path: str | Path) -> float:
    """Bits per pixel of a video file's video stream, from its packet sizes (what the re-encode matches)."""

    bits, _ = frame_packets(path)
    info = probe(path)
    if len(bits) == 0:
        raise VQEError(f"{path}: no video packets to measure the bitrate from")
    return float(bits.sum() / (len(bits) * info.width * info.height))


# ---------------------------------------------------------------- "+ adapt" rows of the evaluation


