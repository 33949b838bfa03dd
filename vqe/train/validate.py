"""Validation during training: whole frames of the validation clips at the main bitrate.

A handful of frames per clip, scored by PSNR and LPIPS-alex against the ground truth, so the curves
in `dvc plots` show both what Stage A optimises (distortion) and what Stage B is for (perception).
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


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of images in [0, 1] (peak 1), over the whole batch."""
    mse = torch.mean((a.double() - b.double()) ** 2)
    return float(10 * torch.log10(1 / mse)) if mse > 0 else float("inf")


class Validator:
    """Fixed validation windows; `__call__(model)` -> {'psnr', 'lpips'} of the model's output."""

    def __init__(self, manifest: Manifest, n: int, *, low_res: bool, kbps: Optional[float], frames: int,
                 device: torch.device, split: str = "val") -> None:
        entries = [e for e in manifest.select(split) if kbps is None or e.kbps_target == kbps]
        if not entries:
            raise VQEError(f"{manifest.root}: no {split} encodes at {kbps} kbps to validate on")
        self.device = device
        self.samples: list[tuple[torch.Tensor, torch.Tensor]] = []
        for e in entries:
            lq, gt = manifest.lq(e, low_res=low_res), manifest.gt(e.clip)
            for t in np.linspace(0, e.frames - 1, min(frames, e.frames)).round().astype(int):
                self.samples.append((to_tensor(lq[window_indices(int(t), n, e.frames)]), to_tensor(gt[t])))
        self.lpips = lpips_model("alex", device)
        inputs = [to_tensor(manifest.lq(e)[t]) for e in entries
                  for t in np.linspace(0, e.frames - 1, min(frames, e.frames)).round().astype(int)]
        self.input_scores = self._score(inputs)  # the bicubic up-scaled decode, for reference

    def _score(self, outputs: list[torch.Tensor]) -> dict[str, float]:
        psnr, lp = [], []
        for out, (_, gt) in zip(outputs, self.samples):
            out, gt = out.to(self.device)[None].clamp(0, 1), gt.to(self.device)[None]
            psnr.append(psnr_db(out, gt))
            lp.append(float(distance(self.lpips, features(self.lpips, out * 255), features(self.lpips, gt * 255))))
        return {"psnr": float(np.mean(psnr)), "lpips": float(np.mean(lp))}

    @torch.inference_mode()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        outputs = [model(lq.to(self.device)[None])[0] for lq, _ in self.samples]
        model.train(was_training)
        scores = self._score(outputs)
        scores["psnr_gain"] = scores["psnr"] - self.input_scores["psnr"]
        return scores
