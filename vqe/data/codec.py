"""Encoding frames with PyAV at a target bitrate or CRF, with an exact intra period.

Codec option traps (checked): x264 ignores a top-level `keyint` option; the intra period must go
through `x264-params`. Scene-cut keyframes are disabled so the GOP is exactly `intra_period`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np

from vqe.config import CODECS
from vqe.data.video import open_video
from vqe.util.atomic import atomic_path
from vqe.util.errors import VQEError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encode otherwise


@dataclass(frozen=True)
class EncodeSettings:
    codec: str = "libx264"
    kbps: Optional[float] = None  # target bitrate (average bitrate mode) ...
    crf: Optional[int] = None  # ... or constant rate factor
    preset: str = "veryfast"  # x264/x265 preset; VP9 and AV1 use fixed fast speeds
    intra_period: int = 100
    fps: float = 25.0
    threads: int = 1  # x264's multi-threaded rate control is not deterministic
    bitexact: bool = True  # x264 without its SIMD code: ~1.5x slower, identical bytes every run

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise VQEError(f"unknown codec {self.codec!r}; use one of {CODECS}")
        if (self.kbps is None) == (self.crf is None):
            raise VQEError("encode settings need exactly one of kbps and crf")

    def codec_options(self) -> dict[str, str]:
        """Encoder private options that fix the speed, rate mode and keyframe interval."""
        k = self.intra_period
        gop = f"keyint={k}:min-keyint={k}:scenecut=0"
        opts: dict[str, str] = {
            # x264's assembly gave different bytes for identical input now and then (seen with
            # PyAV 18.1 / FFmpeg 8, even at fixed CRF on one thread); its C code does not.
            "libx264": {"preset": self.preset, "x264-params": gop + (":asm=0" if self.bitexact else "")},
            "libx265": {"preset": self.preset, "x265-params": f"{gop}:log-level=error"},
            "libvpx-vp9": {"deadline": "good", "cpu-used": "4", "auto-alt-ref": "0"},
            # SVT-AV1 runs its own thread pool whatever thread_count says; on a busy machine its output
            # bytes varied run to run. lp=1 (one thread, with threads=1) makes it deterministic.
            "libsvtav1": {"preset": "10", "svtav1-params": f"keyint={k}" + (":lp=1" if self.threads == 1 else "")},
        }[self.codec]
        if self.crf is not None:
            opts["crf"] = str(self.crf)
        return opts


@dataclass(frozen=True)
class EncodeResult:
    path: str
    frames: int
    bytes: int  # sum of the video packet payloads (the bitstream, without container overhead)
    kbps: float  # actual bitrate of the bitstream
    keyframes: list[int]
    encoder_kbps: Optional[float] = None  # the target given to the encoder (after calibration)


def encode(frames: np.ndarray, path: str | Path, settings: EncodeSettings) -> EncodeResult:
    """Encode RGB frames (T, H, W, 3) to `path` (container from its suffix), atomically."""
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise VQEError(f"{path}: frame size {w}x{h} is odd; 4:2:0 encoding needs even sizes")
    path = Path(path)
    nbytes, keyframes = 0, []
    rate = Fraction(settings.fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=_format(path), options={"fflags": "+bitexact"}) as out:
            stream = out.add_stream(settings.codec, rate=rate, options=settings.codec_options())
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.thread_count = settings.threads
            stream.codec_context.time_base = 1 / rate
            if settings.kbps is not None:
                stream.bit_rate = int(settings.kbps * 1000)
            if settings.codec == "libvpx-vp9":
                stream.codec_context.gop_size = settings.intra_period
            for packet in _packets(stream, frames):
                if packet.is_keyframe and packet.pts is not None:
                    keyframes.append(int(packet.pts))
                nbytes += packet.size
                out.mux(packet)
    kbps = nbytes * 8 / (t / settings.fps) / 1000
    return EncodeResult(str(path), t, nbytes, kbps, sorted(keyframes), settings.kbps)


def encode_at_rate(frames: np.ndarray, path: str | Path, settings: EncodeSettings,
                   tolerance: float = 0.05, max_tries: int = 4) -> EncodeResult:
    """Encode at `settings.kbps`, re-encoding with a corrected encoder target until the actual rate
    is within `tolerance` of the wanted one (single-pass rate control undershoots short clips).

    Returns the result closest to the target (its `encoder_kbps` says what the encoder was given).
    """
    if settings.kbps is None or tolerance <= 0:
        return encode(frames, path, settings)
    wanted, target = settings.kbps, settings.kbps
    best: Optional[EncodeResult] = None
    for _ in range(max_tries):
        result = encode(frames, path, replace(settings, kbps=target))
        if best is None or abs(result.kbps - wanted) < abs(best.kbps - wanted):
            best = result
        if abs(result.kbps / wanted - 1) <= tolerance:
            break
        target = max(1.0, target * wanted / result.kbps)  # x264 takes whole kbps: never 0
    assert best is not None
    if best is not result:  # the file on disk is the last attempt: put the best one back
        encode(frames, path, replace(settings, kbps=best.encoder_kbps))
    return best


def _format(path: Path) -> str:
    formats = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov"}
    if path.suffix not in formats:
        raise VQEError(f"{path}: unsupported container suffix; use one of {sorted(formats)}")
    return formats[path.suffix]


# RGB -> Y'CbCr, ITU-R BT.601 limited range (what swscale uses for SD and H.264 decoders assume)
_BT601 = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0


def rgb_to_yuv420(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> the (3H/2, W) planar yuv420p layout PyAV takes, chroma 2x2-averaged.

    Done in numpy on purpose: letting PyAV/swscale convert RGB frames inside the encode gave
    bitstreams that varied from run to run (seen with FFmpeg 8 / PyAV 18), and data synthesis
    must be bit-exact.
    """
    h, w, _ = frame.shape
    ycc = frame.astype(np.float64) @ _BT601.T + (16.0, 128.0, 128.0)
    chroma = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = (ycc[..., 0], chroma[..., 0], chroma[..., 1])
    flat = np.concatenate([np.clip(np.rint(p), 0, 255).astype(np.uint8).ravel() for p in planes])
    return flat.reshape(h * 3 // 2, w)


def _packets(stream: av.VideoStream, frames: np.ndarray) -> Iterator[av.Packet]:
    """Every packet of the encode, the encoder's flush included."""
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(rgb_to_yuv420(f), format="yuv420p")
        vf.pts = i
        yield from stream.encode(vf)
    yield from stream.encode(None)


def frame_packets(path: str | Path) -> tuple[np.ndarray, list[int]]:
    """A stored bitstream's packets in display order: (bits of each frame's packet, keyframe indices).

    The per-frame sizes give the bitrate of any span of frames (`kbps_scored` of an evaluation)."""
    with open_video(Path(path)) as container:
        stream = container.streams.video[0]
        packets = sorted((p.pts, p.size, p.is_keyframe) for p in container.demux(stream) if p.pts is not None)
    bits = np.array([8 * size for _, size, _ in packets], dtype=np.int64)
    return bits, [i for i, (_, _, key) in enumerate(packets) if key]


def bpp(kbps: float, width: int, height: int, fps: float) -> float:
    """Bits per pixel of a stream at `kbps` kilobits per second: kbps * 1000 / (w * h * fps)."""
    return kbps * 1000.0 / (width * height * fps)
