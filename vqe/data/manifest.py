"""The synthesised data set on disk and its manifest.

Layout under `out_dir` (default data/synth):
    manifest.json
    <clip>/gt.npy                    ground truth, uint8 (T, H, W, 3)
    <clip>/<rate_id>/stream.mkv      the encoded bitstream, kept
    <clip>/<rate_id>/lq_lr.npy       decoded frames at the encoded (down-scaled) size
    <clip>/<rate_id>/lq.npy          decoded frames bicubic up-scaled to the ground-truth size
Arrays are plain .npy so that training memory-maps them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from vqe.util.atomic import write_json
from vqe.util.errors import VQEError


@dataclass
class ClipEntry:
    name: str
    split: str
    source: str
    frames: int
    height: int
    width: int
    fps: float
    gt: str  # relative to the manifest's folder


@dataclass
class EncodeEntry:
    clip: str
    split: str
    rate_id: str
    codec: str
    preset: str
    kbps_target: Optional[float]
    crf: Optional[int]
    intra_period: int
    scale: int
    frames: int
    height: int
    width: int
    lr_height: int
    lr_width: int
    fps: float
    kbps: float  # actual, from the bitstream's packet sizes
    kbps_encoder: Optional[float]  # the target the encoder was given after rate calibration
    bpp: float  # bits per pixel of the encoded (down-scaled) video
    psnr_input: float  # mean RGB PSNR of the up-scaled decode against the ground truth
    keyframes: list[int] = field(default_factory=list)
    stream: str = ""
    lq: str = ""
    lq_lr: str = ""


@dataclass
class Manifest:
    root: Path
    clips: list[ClipEntry]
    encodes: list[EncodeEntry]

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.json"
        if not path.is_file():
            raise VQEError(f"{path}: manifest not found; run the synthesise stage first")
        try:
            data = json.loads(path.read_text())
            clips = [ClipEntry(**c) for c in data["clips"]]
            encodes = [EncodeEntry(**e) for e in data["encodes"]]
        except (ValueError, KeyError, TypeError) as e:
            raise VQEError(f"{path}: malformed manifest ({e})") from None
        return cls(path.parent, clips, encodes)

    def save(self) -> None:
        write_json(self.root / "manifest.json",
                   {"clips": [asdict(c) for c in self.clips], "encodes": [asdict(e) for e in self.encodes]})

    def clip(self, name: str) -> ClipEntry:
        for c in self.clips:
            if c.name == name:
                return c
        raise VQEError(f"{self.root}: no clip named {name!r}")

    def select(self, split: Optional[str] = None, rate_id: Optional[str] = None) -> list[EncodeEntry]:
        return [e for e in self.encodes
                if (split is None or e.split == split) and (rate_id is None or e.rate_id == rate_id)]

    def gt(self, name: str, mmap: bool = True) -> np.ndarray:
        return np.load(self.root / self.clip(name).gt, mmap_mode="r" if mmap else None)

    def lq(self, entry: EncodeEntry, low_res: bool = False, mmap: bool = True) -> np.ndarray:
        return np.load(self.root / (entry.lq_lr if low_res else entry.lq), mmap_mode="r" if mmap else None)
