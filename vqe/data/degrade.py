"""The paper's degradation (§IV): down-scale (swscale bicubic) -> encode -> decode -> bicubic up-scale to GT size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqe.data import video
from vqe.data.codec import EncodeResult, EncodeSettings, encode_at_rate
from vqe.util.errors import VQEError
from vqe.util.upscale import bicubic_frames


def downscale(gt: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic down-scaling by an integer factor (swscale filters, so it is anti-aliased)."""
    if scale == 1:
        return gt
    h, w = gt.shape[1:3]
    if h % scale or w % scale:
        raise VQEError(f"frame size {w}x{h} is not divisible by the scale {scale}")
    return video.resize(gt, h // scale, w // scale, "BICUBIC")


def upscale(frames: np.ndarray, height: int, width: int, interpolation: str = "BICUBIC") -> np.ndarray:
    """Up-scaling to the ground-truth size: BICUBIC is the project's one bicubic (`vqe.util.upscale`), the
    base every model adds its residual to; other interpolations (the Lanczos baseline) use swscale."""
    if interpolation == "BICUBIC":
        return bicubic_frames(frames, height, width)
    return video.resize(frames, height, width, interpolation)


def encode_decode(lr: np.ndarray, stream_path: Path, settings: EncodeSettings,
                  rate_tolerance: float = 0.0) -> tuple[np.ndarray, EncodeResult]:
    """Encode the down-scaled frames (rate-calibrated when `rate_tolerance` > 0), keep the
    bitstream, and decode it back."""
    result = encode_at_rate(lr, stream_path, settings, rate_tolerance)
    decoded = video.read_video(stream_path)
    if len(decoded) != len(lr):
        raise VQEError(f"{stream_path}: decoded {len(decoded)} frames but encoded {len(lr)}")
    return decoded, result
