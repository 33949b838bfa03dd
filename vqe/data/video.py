"""Reading, resizing and writing frames with PyAV (FFmpeg), with errors that name the file.

Frames are numpy uint8 arrays shaped (T, H, W, 3), RGB, everywhere in vqe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np

from vqe.util.errors import VQEError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".y4m", ".mov", ".webm")
IMAGE_SUFFIXES = (".png",)
INTERPOLATIONS = ("BICUBIC", "LANCZOS", "BILINEAR", "AREA")


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    codec: str


def open_video(path: Path) -> av.container.InputContainer:
    """Open a media file for decoding; a missing, empty or unreadable file is a VQEError."""
    if not path.exists():
        raise VQEError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise VQEError(f"{path}: file is empty")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VQEError(f"{path}: not a readable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise VQEError(f"{path}: contains no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Size, frame rate and codec of the first video stream."""
    path = Path(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(str(path), stream.codec_context.width, stream.codec_context.height,
                         float(rate), stream.codec_context.name)


def iter_frames(path: str | Path, start: int = 0, count: Optional[int] = None) -> Iterator[np.ndarray]:
    """Decode frames [start, start+count) of the first video stream as RGB uint8 arrays."""
    path = Path(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                if index >= start:
                    yield frame.to_ndarray(format="rgb24")
                index += 1
                if count is not None and index >= start + count:
                    return
        except av.FFmpegError as e:
            raise VQEError(f"{path}: decoding failed at frame {index} ({e}); the file may be corrupt or truncated") from None


def read_video(path: str | Path, start: int = 0, count: Optional[int] = None) -> np.ndarray:
    """All requested frames of a video; a video with no decodable frame is an error."""
    frames = list(iter_frames(path, start, count))
    if not frames:
        raise VQEError(f"{path}: no decodable video frames (from frame {start})")
    return np.stack(frames)


def read_png_sequence(folder: str | Path, start: int = 0, count: Optional[int] = None) -> np.ndarray:
    """Frames of a folder of PNG images in name order (e.g. a Vimeo-90K septuplet)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = files[start:] if count is None else files[start:start + count]
    if not files:
        raise VQEError(f"{folder}: no PNG frames found")
    frames = []
    for f in files:
        try:
            frame = next(iter_frames(f))
        except StopIteration:
            raise VQEError(f"{f}: not a readable image") from None
        if frames and frame.shape != frames[0].shape:
            raise VQEError(f"{f}: size {frame.shape[1]}x{frame.shape[0]} differs from the first frame "
                           f"{frames[0].shape[1]}x{frames[0].shape[0]}")
        frames.append(frame)
    return np.stack(frames)


def resize(frames: np.ndarray, height: int, width: int, interpolation: str = "BICUBIC") -> np.ndarray:
    """Resize every frame with FFmpeg's swscale (the scaler the paper's FFmpeg pipeline uses)."""
    if interpolation not in INTERPOLATIONS:
        raise VQEError(f"interpolation {interpolation!r} is not one of {INTERPOLATIONS}")
    if frames.shape[1:3] == (height, width):
        return frames
    out = np.empty((len(frames), height, width, 3), np.uint8)
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        out[i] = vf.reformat(width=width, height=height, interpolation=interpolation).to_ndarray()
    return out
