"""Non-learned baselines: the compressed input itself, Lanczos up-scaling, FFmpeg deblocking.

Each baseline maps one encode of the manifest to enhanced frames at ground-truth size, so it is
evaluated exactly like a learned model.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vqe.config import BASELINES
from vqe.data.degrade import upscale
from vqe.data.manifest import EncodeEntry, Manifest
from vqe.data.video import open_video
from vqe.util.errors import VQEError


def filter_video(path: str | Path, spec: str) -> np.ndarray:
    """Decode `path` and run its YUV frames through an FFmpeg filter chain such as 'deblock=...'."""
    path = Path(path)
    out = []
    with open_video(path) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        src = graph.add_buffer(template=stream, time_base=stream.time_base or Fraction(1, 25))
        try:
            nodes = [graph.add(*_split(f)) for f in spec.split(",")]
        except (av.FFmpegError, ValueError) as e:
            raise VQEError(f"filter {spec!r}: {e}") from None
        sink = graph.add("buffersink")
        graph.link_nodes(src, *nodes, sink).configure()
        for frame in container.decode(stream):
            graph.vpush(frame)
            out.extend(_drain(graph))
        graph.vpush(None)
        out.extend(_drain(graph))
    if not out:
        raise VQEError(f"{path}: the filter {spec!r} produced no frames")
    return np.stack(out)


def _split(f: str) -> tuple[str, str]:
    name, _, args = f.partition("=")
    return name.strip(), args


def _drain(graph: av.filter.Graph) -> list[np.ndarray]:
    frames = []
    while True:
        try:
            frames.append(graph.vpull().to_ndarray(format="rgb24"))
        except (av.BlockingIOError, av.EOFError):
            return frames


def run_baseline(name: str, manifest: Manifest, entry: EncodeEntry, deblock_filter: str) -> np.ndarray:
    """Enhanced frames (T, H, W, 3) of baseline `name` for one encode."""
    size = (entry.height, entry.width)
    if name == "input":  # bicubic up-scaled decode: the paper's "H.264 Compressed" row
        return np.asarray(manifest.lq(entry))
    if name == "lanczos":
        return upscale(np.asarray(manifest.lq(entry, low_res=True)), *size, "LANCZOS")
    if name == "deblock":
        return upscale(filter_video(manifest.root / entry.stream, deblock_filter), *size, "BICUBIC")
    raise VQEError(f"unknown baseline {name!r}; use one of {BASELINES}")
