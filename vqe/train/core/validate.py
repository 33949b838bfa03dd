"""Validation during training: whole frames of the validation clips at the main bitrate.

Scored exactly as Table 1 is: the model restores uint8 frames through `vqe.inference.enhance.restore_span` (the
code `vqe enhance` and the evaluation run) and `vqe.metrics.reference.score_runs` scores them against the
ground truth, the compressed input row included. So a validation gain is the gain Table 1 would show
on the same frames: PSNR and LPIPS-alex, and for consecutive frames tLP (flicker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np
import torch
from torch import nn

from vqe.config import Params
from vqe.data.manifest import Manifest
from vqe.data.span import scored_runs
from vqe.inference.enhance import default_batch, frame_side, restore_span
from vqe.metrics.fidelity import resolve_device
from vqe.metrics.reference import Reference, score_runs
from vqe.util.errors import VQEError


class Validator:
    """Fixed validation frames; `__call__(model)` -> {'psnr', 'lpips'[, 'tlp'], 'psnr_gain', 'lpips_gain'} of the
    model's output (gains: model minus the input row; a negative LPIPS gain is an improvement).

    `frames` frames spread over each clip, or with `consecutive=True` one run of `frames` consecutive
    frames from the middle of each clip, which adds tLP (temporal flicker); `runs` (clip length -> runs of
    frames, e.g. the evaluation span) overrides both.
    """

    def __init__(self, manifest: Manifest, n: int, *, low_res: bool, kbps: Optional[float], frames: int,
                 device: torch.device, split: str = "val", consecutive: bool = False,
                 runs: Optional[Callable[[int], list[list[int]]]] = None) -> None:
        entries = [e for e in manifest.select(split) if kbps is None or e.kbps_target == kbps]
        if not entries:
            raise VQEError(f"{manifest.root}: no {split} encodes at {kbps} kbps to validate on")
        self.device = torch.device(device)
        self.keys = ("psnr", "lpips", "tlp") if consecutive and runs is None else ("psnr", "lpips")
        # (decoded frames the model reads, scored runs, their references), per validation encode
        self.items: list[tuple[np.ndarray, list[list[int]], list[Reference]]] = []
        self.streams = [manifest.root / e.stream for e in entries]  # for the models that read the bitstream
        inputs = []  # the bicubic up-scaled decode: the input row, scored by the same code
        for e in entries:
            gt, up = manifest.gt(e.clip), manifest.lq(e)
            if runs is not None:
                clip_runs = runs(e.frames)
            elif consecutive:
                clip_runs = [frame_indices(e.frames, frames, True)]
            else:
                clip_runs = [[t] for t in frame_indices(e.frames, frames, False)]
            refs = [Reference(np.asarray(gt[r]), device=self.device, fps=e.fps) for r in clip_runs]
            self.items.append((manifest.lq(e, low_res=low_res), clip_runs, refs))
            inputs += [np.asarray(up[r]) for r in clip_runs]
        self.refs = [ref for _, _, refs in self.items for ref in refs]
        self.input_scores = score_runs(inputs, self.refs, self.keys)

    @torch.inference_mode()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        batch = default_batch(self.device)
        sides = [frame_side(model, stream) for stream in self.streams]
        outputs = [restore_span(model, lq, r[0], len(r), batch=batch, device=self.device, side=side)
                   for (lq, runs, _), side in zip(self.items, sides) for r in runs]
        model.train(was_training)
        scores = score_runs(outputs, self.refs, self.keys)
        scores["psnr_gain"] = scores["psnr"] - self.input_scores["psnr"]
        scores["lpips_gain"] = scores["lpips"] - self.input_scores["lpips"]
        return scores


def frame_indices(length: int, frames: int, consecutive: bool) -> list[int]:
    """`frames` frames spread evenly over a clip of `length`, or that many consecutive ones from its middle."""
    if consecutive:
        start = max(0, (length - frames) // 2)
        return list(range(start, min(length, start + frames)))
    return [int(t) for t in np.linspace(0, length - 1, min(frames, length)).round().astype(int)]


def span_scorer(params: Params, manifest: Manifest, n: int, device: torch.device) -> Validator:
    """The test clips' span `scaling.segments` x `scaling.segment_frames` at the main bitrate, scored like
    Table 1 (through `restore_span`)."""
    return Validator(manifest, n, low_res=params.stage_a.model.mode == "sra", kbps=params.eval.main_kbps,
                     frames=1, device=device, split="test",
                     runs=lambda length: scored_runs(length, params.scaling.segments, params.scaling.segment_frames))


def test_span_scores(params: Params) -> Callable[[torch.nn.Module], dict[str, float]]:
    """`train_stage_a`'s `extra_scores` for this study: the model's gain on the test span, as
    `test_psnr_gain` and `test_lpips_gain`."""
    manifest = Manifest.load(params.synth.out_dir)
    scorer = span_scorer(params, manifest, params.stage_a.model.n, resolve_device(params.stage_a.train.device))

    def test_scores(model: torch.nn.Module) -> dict[str, float]:
        scores = scorer(model)
        return {"test_psnr_gain": scores["psnr_gain"], "test_lpips_gain": scores["lpips_gain"]}

    return test_scores
