"""What an H.264 bitstream says about each of its frames: quantiser, bits and picture type.

MFQE 2.0 finds its peak-quality frames from coding information (the QP and bits of every frame, with
no-reference image features). FFmpeg's H.264 decoder exports each frame's macroblock quantisers as
`AV_FRAME_DATA_VIDEO_ENC_PARAMS` side data when asked (`export_side_data=venc_params`), and PyAV reads
it (`VideoEncParams.qp_map()`); the bits are the frame's packet size. Everything is in display order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vqe.data.codec import frame_packets
from vqe.data.video import open_video
from vqe.util.errors import VQEError

PICTURE_TYPES = ("I", "P", "B")


@dataclass
class FrameStats:
    """Per display-order frame: the mean macroblock QP, the packet's bits and the picture type (I, P or B)."""

    qp: np.ndarray  # float64 (T,)
    bits: np.ndarray  # int64 (T,)
    types: list[str]

    def __len__(self) -> int:
        return len(self.qp)


def frame_stats(path: str | Path) -> FrameStats:
    """Decode the first video stream of `path` for its per-frame quantisers (a VQEError if the decoder exports
    none: only codecs with `venc_params` support, H.264 among them, do)."""
    path = Path(path)
    qp: dict[int, float] = {}
    types: dict[int, str] = {}
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"export_side_data": "venc_params"}
        for index, frame in enumerate(container.decode(stream)):
            params = [d for d in frame.side_data if d.type.name == "VIDEO_ENC_PARAMS"]
            if not params:
                raise VQEError(f"{path}: frame {index} carries no quantiser side data (codec "
                               f"{stream.codec_context.name}); MFQE's detector needs H.264")
            key = index if frame.pts is None else frame.pts
            qp[key] = float(np.mean(params[0].qp_map()))
            types[key] = _picture_type(frame)
    bits, _ = frame_packets(path)
    order = sorted(qp)
    if len(bits) != len(order):
        raise VQEError(f"{path}: {len(bits)} video packets but {len(order)} decoded frames")
    return FrameStats(np.array([qp[k] for k in order]), bits, [types[k] for k in order])


def _picture_type(frame: av.VideoFrame) -> str:
    """'I', 'P' or 'B' (PyAV gives an enum; SI/SP/BI count as their base type)."""
    name = getattr(frame.pict_type, "name", str(frame.pict_type)).upper()
    for t in PICTURE_TYPES:
        if t in name:
            return t
    return {1: "I", 2: "P", 3: "B"}.get(int(frame.pict_type), "P")
