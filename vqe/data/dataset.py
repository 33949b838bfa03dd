"""PyTorch datasets over the synthesised manifest.

`TrainPatches` yields random aligned patches `(lq_window, gt_centre)` with flips and rotations for
training. It reads memory-mapped .npy arrays and pads the window at the clip's ends by replicating
the edge frame (`window_indices`, also what validation uses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from vqe.data.manifest import EncodeEntry, Manifest
from vqe.util.errors import VQEError


def window_indices(t: int, n: int, length: int) -> np.ndarray:
    """Frame indices t-n..t+n, clamped to [0, length-1] (edge replication)."""
    return np.clip(np.arange(t - n, t + n + 1), 0, length - 1)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(frames, dtype=np.uint8)).movedim(-1, -3).float().div_(255)


def augment(lq: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same random flip / 90-degree rotation on the window (T,h,w,3) and its target ([k,]H,W,3)."""
    if rng.random() < 0.5:
        lq, gt = lq[..., ::-1, :], gt[..., ::-1, :]
    if rng.random() < 0.5:
        lq, gt = lq[..., ::-1, :, :], gt[..., ::-1, :, :]
    k = int(rng.integers(4))
    return np.rot90(lq, k, axes=(-3, -2)), np.rot90(gt, k, axes=(-3, -2))


class TrainPatches(Dataset):
    """Random patches of every (encode, frame) of a split; sample i is a pure function of (seed, i).

    `length` sets the epoch size (cycling over the frames), so iteration-based training can ask for more.

    `low_res=True` reads the decoded frames at the encoded size (for super-resolution models):
    the LQ patch is then `patch // scale` and lines up with the GT patch at `scale` times its position.

    `frames_out=k > 1` gives short sequences for the temporal losses of phase 2: k consecutive GT
    frames (k, 3, H, W) and the 2n+k LQ frames their windows need (window j is lq[j:j+2n+1]).

    `side(entry)` -> one value per frame of the encode (MFQE 2.0's PQF labels) adds a third item, those
    values at the LQ frames (2n+k,), float32.
    """

    def __init__(self, manifest: Manifest, split: str, n: int, patch: int, *, low_res: bool = False,
                 augment: bool = True, seed: int = 0, length: Optional[int] = None,
                 rate_ids: Optional[list[str]] = None, frames_out: int = 1,
                 side: Optional[Callable[[EncodeEntry], np.ndarray]] = None) -> None:
        if frames_out < 1:
            raise VQEError(f"frames_out={frames_out} must be >= 1")
        self.entries = [e for e in manifest.select(split) if rate_ids is None or e.rate_id in rate_ids]
        if not self.entries:
            raise VQEError(f"{manifest.root}: no encodes in split {split!r}")
        if n < 0:
            raise VQEError(f"window radius n={n} must be >= 0")
        self.manifest, self.n, self.patch, self.low_res = manifest, n, patch, low_res
        self.do_augment, self.seed, self.frames_out = augment, seed, frames_out
        scale = self.entries[0].scale if low_res else 1
        if patch % scale:
            raise VQEError(f"patch {patch} is not divisible by the scale {scale}")
        for e in self.entries:
            if patch > min(e.height, e.width):
                raise VQEError(f"patch {patch} is larger than clip {e.clip!r} ({e.width}x{e.height})")
        self.index = [(i, t) for i, e in enumerate(self.entries) for t in range(e.frames)]
        self.side = None if side is None else [np.asarray(side(e), np.float32) for e in self.entries]
        for e, values in zip(self.entries, self.side or []):
            if len(values) != e.frames:
                raise VQEError(f"{e.clip}/{e.rate_id}: side information for {len(values)} of {e.frames} frames")
        self.length = length or len(self.index)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([self.seed, i])
        e_idx, t = self.index[i % len(self.index)]
        entry = self.entries[e_idx]
        s = entry.scale if self.low_res else 1
        p = self.patch // s
        y = int(rng.integers(0, entry.height // s - p + 1))
        x = int(rng.integers(0, entry.width // s - p + 1))
        lq_all = self.manifest.lq(entry, low_res=self.low_res)
        # GT frames first..first+k-1 around t, kept inside the clip (shorter clips replicate the last
        # frame); window j of the LQ frames is then exactly the window of GT frame first+j.
        first = max(0, min(t - self.frames_out // 2, entry.frames - self.frames_out))
        lq_idx = np.clip(np.arange(first - self.n, first + self.frames_out + self.n), 0, entry.frames - 1)
        gt_idx = np.clip(np.arange(first, first + self.frames_out), 0, entry.frames - 1)
        lq = lq_all[lq_idx, y:y + p, x:x + p]
        gt = self.manifest.gt(entry.clip)[gt_idx, y * s:(y + p) * s, x * s:(x + p) * s]
        if self.frames_out == 1:
            gt = gt[0]
        if self.do_augment:
            lq, gt = augment(lq, gt, rng)
        if self.side is not None:
            return to_tensor(lq), to_tensor(gt), torch.from_numpy(self.side[e_idx][lq_idx])
        return to_tensor(lq), to_tensor(gt)
