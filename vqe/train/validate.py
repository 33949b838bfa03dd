"""Validation during training: whole frames of the validation clips at the main bitrate.

A handful of frames per clip, scored by PSNR and LPIPS-alex against the ground truth, so the curves
in `dvc plots` show both what Stage A optimises (distortion) and what Stage B is for (perception),
and, for phase 2, tLP on consecutive frames (flicker).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from vqe.data.dataset import to_tensor, window_indices
from vqe.data.manifest import Manifest
from vqe.errors import VQEError
from vqe.metrics.perceptual import distance, features, lpips_model
from vqe.metrics.temporal import tlp_from_steps


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of images in [0, 1] (peak 1), over the whole batch."""
    mse = torch.mean((a.double() - b.double()) ** 2)
    return float(10 * torch.log10(1 / mse)) if mse > 0 else float("inf")


class Validator:
    """Fixed validation windows; `__call__(model)` -> {'psnr', 'lpips'[, 'tlp']} of the model's output.

    `consecutive=True` scores a run of `frames` consecutive frames from the middle of each clip
    instead of frames spread over it, and adds tLP (temporal flicker, as `metrics.temporal.tlp`).
    """

    def __init__(self, manifest: Manifest, n: int, *, low_res: bool, kbps: Optional[float], frames: int,
                 device: torch.device, split: str = "val", consecutive: bool = False) -> None:
        entries = [e for e in manifest.select(split) if kbps is None or e.kbps_target == kbps]
        if not entries:
            raise VQEError(f"{manifest.root}: no {split} encodes at {kbps} kbps to validate on")
        self.device, self.consecutive = device, consecutive
        self.samples: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.clips: list[list[int]] = []  # sample indices of each clip, in time order
        inputs = []  # the bicubic up-scaled decode, for reference
        for e in entries:
            lq, up, gt = manifest.lq(e, low_res=low_res), manifest.lq(e), manifest.gt(e.clip)
            self.clips.append([])
            for t in frame_indices(e.frames, frames, consecutive):
                self.clips[-1].append(len(self.samples))
                self.samples.append((to_tensor(lq[window_indices(t, n, e.frames)]), to_tensor(gt[t])))
                inputs.append(to_tensor(up[t]))
        self.lpips = lpips_model("alex", device)
        with torch.no_grad():  # the targets' LPIPS features, computed once for every validation
            self.gt_features = [features(self.lpips, gt.to(device)[None] * 255) for _, gt in self.samples]
        self.input_scores = self._score(inputs)

    def _score(self, outputs: list[torch.Tensor]) -> dict[str, float]:
        psnr, lp, feats = [], [], []
        for out, (_, gt), fg in zip(outputs, self.samples, self.gt_features):
            out = out.to(self.device)[None].clamp(0, 1)
            psnr.append(psnr_db(out, gt.to(self.device)[None]))
            feats.append(features(self.lpips, out * 255))
            lp.append(float(distance(self.lpips, feats[-1], fg)))
        scores = {"psnr": float(np.mean(psnr)), "lpips": float(np.mean(lp))}
        if self.consecutive:  # consecutive-frame LPIPS of the output and of the ground truth
            pairs = [(a, b) for clip in self.clips for a, b in zip(clip[:-1], clip[1:])]
            out_steps = [float(distance(self.lpips, feats[b], feats[a])) for a, b in pairs]
            gt_steps = [float(distance(self.lpips, self.gt_features[b], self.gt_features[a])) for a, b in pairs]
            scores["tlp"] = tlp_from_steps(np.array(out_steps), np.array(gt_steps))
        return scores

    @torch.inference_mode()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        outputs = [model(lq.to(self.device)[None])[0] for lq, _ in self.samples]
        model.train(was_training)
        scores = self._score(outputs)
        scores["psnr_gain"] = scores["psnr"] - self.input_scores["psnr"]
        return scores


def frame_indices(length: int, frames: int, consecutive: bool) -> list[int]:
    """`frames` frames spread evenly over a clip of `length`, or that many consecutive ones from its middle."""
    if consecutive:
        start = max(0, (length - frames) // 2)
        return list(range(start, min(length, start + frames)))
    return [int(t) for t in np.linspace(0, length - 1, min(frames, length)).round().astype(int)]
