"""Applying a trained restoration model to a whole video: a streaming sliding window over the frames.

The model contract (see `vqe.models.build`): a `torch.nn.Module` with integer attributes `n` (window
radius: it consumes 2n+1 frames) and `scale` (output size = input size * scale), whose
`forward(x)` maps float32 x of shape (B, 2n+1, 3, h, w) in [0, 1] to (B, 3, h*scale, w*scale),
roughly in [0, 1]. Frames are uint8 RGB numpy arrays (H, W, 3), as everywhere in vqe.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import av
import numpy as np
import torch
from tqdm import tqdm

from vqe.config import CODECS, MAX_CRF
from vqe.data.codec import _format
from vqe.data.video import open_video
from vqe.util.atomic import atomic_path, same_file
from vqe.util.errors import VQEError
from vqe.util.upscale import to_uint8


def model_geometry(model: torch.nn.Module) -> tuple[int, int]:
    """The model's window radius `n` and up-scaling factor `scale`, checked."""
    values = []
    for name, minimum in (("n", 0), ("scale", 1)):
        value = getattr(model, name, None)
        if not _is_int(value) or value < minimum:
            raise VQEError(f"model {type(model).__name__}: attribute {name!r} must be an integer >= {minimum}, "
                           f"got {value!r}")
        values.append(int(value))
    return values[0], values[1]


def frame_side(model: torch.nn.Module, stream: str | Path) -> Optional[np.ndarray]:
    """The per-frame side information `model` reads from the bitstream `stream` (None for the models that read
    only pixels: every model but MFQE 2.0, see `vqe.models.build`)."""
    return model.frame_side(Path(stream)) if getattr(model, "needs_side", False) else None


def cpu_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN with avx512_bf16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def default_batch(device: str | torch.device) -> int:
    """Windows per forward pass when the user gives none: 1 on the CPU (the fastest per frame there), else 4."""
    return 1 if torch.device(device).type == "cpu" else 4


def enhance_frames(model: torch.nn.Module, frames: Iterable[np.ndarray], *, batch: int = 4,
                   device: str | torch.device = "cpu", tile: Optional[int] = None, tile_overlap: int = 16,
                   amp: bool = False, start: int = 0, stop: Optional[int] = None,
                   side: Optional[np.ndarray] = None) -> Iterator[np.ndarray]:
    """Enhance a stream of frames; yields one uint8 (H*scale, W*scale, 3) frame per input frame, in order.

    `side` is the per-frame side information of a model that reads it (`frame_side`), one value per input
    frame; its windows are built like the frames'.

    With `start`/`stop`, only frames start..stop-1 are enhanced and yielded; the others are read as
    window context only, so a span costs exactly its own windows.

    Frame t is computed from the window of frames clamp(t-n .. t+n) (the first and last frames are
    repeated at the ends of the clip). Input frames are consumed lazily and at most 2n+batch of
    them are held (on `device`, as uint8); up to `batch` windows go through the model per forward
    pass, under `torch.inference_mode()` (not leaked to the caller between yields). The model must
    already be on `device` and in eval mode.

    With `tile`, each window is processed in spatial tiles of `tile` x `tile` input pixels, each
    given `tile_overlap` pixels of context on every side (clipped at the image border), and only
    the tiles' interiors are kept: for a model whose receptive field radius is at most
    `tile_overlap`, the result is the untiled one. `amp` runs the model under bf16 autocast, on CUDA or on a
    CPU with bf16 instructions (`cpu_bf16`; on 2 cores of an AMD EPYC it ran GAN-EVH 1.5x faster, its frames
    52-54 dB from fp32's, at most 3 levels apart). Bad parameters are reported at the call, bad frames when they are reached.
    """
    n, scale = model_geometry(model)
    if not _is_int(batch) or batch < 1:
        raise VQEError(f"batch must be a positive integer, got {batch!r}")
    if tile is not None and (not _is_int(tile) or tile < 1):
        raise VQEError(f"tile must be a positive integer (input pixels) or None, got {tile!r}")
    if not _is_int(tile_overlap) or tile_overlap < 0:
        raise VQEError(f"tile_overlap must be a non-negative integer, got {tile_overlap!r}")
    if not _is_int(start) or start < 0 or (stop is not None and (not _is_int(stop) or stop < start)):
        raise VQEError(f"start/stop must be integers with 0 <= start <= stop, got {start!r}/{stop!r}")
    if getattr(model, "needs_side", False) and side is None:
        raise VQEError(f"model {getattr(model, 'arch', type(model).__name__)} reads side information from the "
                       "bitstream: pass side=vqe.inference.enhance.frame_side(model, stream)")
    if amp and torch.device(device).type == "cpu" and not cpu_bf16():
        raise VQEError("amp: this CPU has no bf16 support in oneDNN (avx512_bf16 / AMX); run without --amp")
    side_t = None if side is None else torch.as_tensor(np.asarray(side, np.float32), device=torch.device(device))
    return _enhance(model, iter(frames), n, scale, int(batch), torch.device(device),
                    None if tile is None else int(tile), int(tile_overlap), amp, int(start),
                    None if stop is None else int(stop), side_t)


def restore_span(model: torch.nn.Module, frames: np.ndarray, start: int, count: int, **kwargs: Any) -> np.ndarray:
    """Frames start..start+count-1 of a clip restored exactly as the whole clip would be, reading only the
    2n neighbours they need (figures of a few frames without restoring the whole clip)."""
    n, _ = model_geometry(model)
    if not 0 <= start < start + count <= len(frames):
        raise VQEError(f"frames {start}..{start + count - 1} are outside a clip of {len(frames)} frames")
    first, last = max(0, start - n), min(len(frames), start + count + n)
    side = kwargs.pop("side", None)
    if side is not None:
        if len(side) != len(frames):
            raise VQEError(f"side information for {len(side)} frames, but the clip has {len(frames)}")
        side = side[first:last]
    return np.stack(list(enhance_frames(model, frames[first:last], start=start - first,
                                        stop=start - first + count, side=side, **kwargs)))


def window_index(start: int, stop: int, n: int, count: int) -> list[list[int]]:
    """The frame indices of the windows of frames start..stop-1 in a clip of `count` frames: clamp(t-n .. t+n)."""
    return [[min(max(u + k, 0), count - 1) for k in range(-n, n + 1)] for u in range(start, stop)]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _enhance(model: torch.nn.Module, source: Iterator[np.ndarray], n: int, scale: int, batch: int,
             device: torch.device, tile: Optional[int], tile_overlap: int, amp: bool, t: int,
             end: Optional[int], side: Optional[torch.Tensor] = None) -> Iterator[np.ndarray]:
    # frame index -> (3, H, W) uint8 on device; a copy, since a source may reuse its arrays
    buffer: dict[int, torch.Tensor] = {}
    shape: Optional[tuple[int, ...]] = None
    count, exhausted = 0, False
    while True:
        limit = t + batch if end is None else min(t + batch, end)
        # read ahead until the windows of frames t .. limit-1 are complete (or the clip ends)
        while not exhausted and count <= limit - 1 + n:
            try:
                frame = next(source)
            except StopIteration:
                exhausted = True
                break
            shape = _check_frame(frame, count, shape)
            if count >= t - n:  # frames before the first window are never needed
                buffer[count] = torch.from_numpy(np.array(frame)).to(device).permute(2, 0, 1)  # own copy
            count += 1
        stop = min(limit, count) if exhausted else limit
        if stop <= t:
            return
        index = window_index(t, stop, n, count)
        windows = [[buffer[i] for i in w] for w in index]
        if side is not None and count > len(side):
            raise VQEError(f"side information for {len(side)} frames, but the clip has more")
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            x = torch.stack([torch.stack(w) for w in windows]).float().div_(255)
            s = None if side is None else side[torch.tensor(index, device=side.device)]
            out = _forward(model, x, n, scale, tile, tile_overlap, s)
            out = out.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        del windows, x
        t = stop
        for k in [k for k in buffer if k < t - n]:
            del buffer[k]
        yield from out


def _check_frame(frame: Any, index: int, shape: Optional[tuple[int, ...]]) -> tuple[int, ...]:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} array {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise VQEError(f"frame {index}: expected a uint8 RGB array (H, W, 3), got {desc}")
    if shape is not None and frame.shape != shape:
        raise VQEError(f"frame {index}: size {frame.shape[1]}x{frame.shape[0]} differs from the first frame "
                       f"{shape[1]}x{shape[0]}")
    return frame.shape


def _tile_starts(size: int, tile: int) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering [0, size); the last one is aligned to the end."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, tile)) + [size - tile]


def _forward(model: torch.nn.Module, x: torch.Tensor, n: int, scale: int, tile: Optional[int],
             overlap: int, side: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, 2n+1, 3, h, w) float in [0, 1] (and the windows' side information) -> (B, 3, h*scale, w*scale)
    uint8, tiled or not."""
    b, _, _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return to_uint8(_run(model, x, n, scale, side))
    out = torch.empty((b, 3, h * scale, w * scale), dtype=torch.uint8, device=x.device)
    for y0 in _tile_starts(h, tile):
        y1 = min(y0 + tile, h)
        cy0, cy1 = max(0, y0 - overlap), min(h, y1 + overlap)
        for x0 in _tile_starts(w, tile):
            x1 = min(x0 + tile, w)
            cx0, cx1 = max(0, x0 - overlap), min(w, x1 + overlap)
            y = _run(model, x[..., cy0:cy1, cx0:cx1], n, scale, side)
            inner = y[..., (y0 - cy0) * scale:(y1 - cy0) * scale, (x0 - cx0) * scale:(x1 - cx0) * scale]
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = to_uint8(inner)
    return out


def _run(model: torch.nn.Module, x: torch.Tensor, n: int, scale: int, side: Optional[torch.Tensor] = None
         ) -> torch.Tensor:
    y = model(x) if side is None else model(x, side)
    b, _, _, h, w = x.shape
    expected = (b, 3, h * scale, w * scale)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != expected:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise VQEError(f"model {type(model).__name__} (n={n}, scale={scale}) returned {got} for input "
                       f"{tuple(x.shape)}; expected {expected}")
    return y


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """Constant-quality options for the output encoder (crf checked against the codec's range)."""
    if codec not in CODECS:
        raise VQEError(f"unknown codec {codec!r}; use one of {CODECS}")
    if not _is_int(crf) or not 0 <= crf <= MAX_CRF[codec]:
        raise VQEError(f"crf {crf!r} is outside 0..{MAX_CRF[codec]} for {codec}")
    opts = {"crf": str(int(crf))}
    if codec in ("libx264", "libx265"):
        opts["preset"] = preset
    elif codec == "libvpx-vp9":
        opts.update({"b": "0", "deadline": "good", "cpu-used": "4"})
    elif codec == "libsvtav1" and preset.isdigit():
        opts["preset"] = preset
    return opts


def enhance_video(input_path: str | Path, output_path: str | Path, model: torch.nn.Module, *,
                  codec: str = "libx264", crf: int = 18, preset: str = "medium", batch: int = 4,
                  device: str | torch.device = "cpu", tile: Optional[int] = None, tile_overlap: int = 16,
                  amp: bool = False, progress: bool = True) -> dict[str, Any]:
    """Enhance the first video stream of `input_path` into `output_path` (container from its suffix).

    Frames are decoded, enhanced (`enhance_frames`) and encoded as a stream (yuv420p, constant
    quality `crf`), keeping the input's frame rate and every frame's timestamp; the first audio
    stream is copied without re-encoding if the output container accepts its codec. The output is
    written to a temporary file beside `output_path` and renamed at the end, so a failed run
    leaves nothing there; an output that is the input file itself (under any path, symlink or hard
    link) is an error, raised before anything is read or written. Returns a summary: frames,
    seconds (wall time), fps (frames per second of processing), frame_rate (the video's),
    input_size and output_size (width, height), audio_copied and audio_codec.
    """
    src, dst = Path(input_path), Path(output_path)
    if same_file(src, dst):
        raise VQEError(f"{dst}: is the input {src}; refusing to write over it")
    fmt = _format(dst)
    options = encoder_options(codec, crf, preset)
    n, scale = model_geometry(model)
    started = time.perf_counter()
    side = frame_side(model, src)  # a first pass over the bitstream, for the models that read it
    with open_video(src) as inp:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        ias = inp.streams.audio[0] if inp.streams.audio else None
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        tb = vs.time_base or 1 / Fraction(rate)
        ticks_per_frame = max(1, round(1 / (Fraction(rate) * tb)))
        with atomic_path(dst) as tmp:
            try:
                out = av.open(str(tmp), mode="w", format=fmt)
            except (av.FFmpegError, OSError, ValueError) as e:
                raise VQEError(f"{dst}: cannot write the output ({e})") from None
            with out:
                writer = _Writer(out, dst, codec, options, rate, tb, scale, ias)
                pts_queue: deque[Optional[int]] = deque()
                decoded = _decode(inp, vs, ias, src, writer, pts_queue)
                bar = _progress(vs.frames or None, src.name, progress)
                last_pts: Optional[int] = None
                try:
                    for frame in enhance_frames(model, decoded, batch=batch, device=device, tile=tile,
                                                tile_overlap=tile_overlap, amp=amp, side=side):
                        pts = pts_queue.popleft()
                        if pts is None or (last_pts is not None and pts <= last_pts):
                            pts = 0 if last_pts is None else last_pts + ticks_per_frame
                        writer.encode(frame, pts)
                        last_pts = pts
                        bar.update(1)
                except torch.cuda.OutOfMemoryError:
                    writer.abort()
                    w, h = writer.input_size or (0, 0)
                    raise VQEError(f"{src}: out of GPU memory enhancing {w}x{h} frames with batch {batch}, "
                                   f"tile {tile}; try a smaller batch or a tile size (e.g. 256)") from None
                except BaseException:
                    writer.abort()  # stop the encoding thread before the container closes
                    raise
                finally:
                    bar.close()
                if writer.frames == 0:
                    writer.abort()
                    raise VQEError(f"{src}: no decodable video frames")
                writer.finish()
    seconds = time.perf_counter() - started
    return {
        "input": str(src), "output": str(dst), "frames": writer.frames, "seconds": seconds,
        "fps": writer.frames / seconds if seconds > 0 else float("inf"), "frame_rate": float(rate),
        "input_size": writer.input_size, "output_size": writer.output_size,
        "audio_copied": writer.audio is not None, "audio_codec": ias.codec_context.name if ias else None,
        "window": 2 * n + 1, "scale": scale,
    }


def _progress(total: Optional[int], name: str, enabled: bool):
    return tqdm(total=total, unit="frame", desc=name, disable=not enabled, dynamic_ncols=True)


def _decode(inp: av.container.InputContainer, vs: av.VideoStream, ias: Optional[av.AudioStream], src: Path,
            writer: "_Writer", pts_queue: deque) -> Iterator[np.ndarray]:
    """RGB frames of the video stream (their pts go to `pts_queue`); audio packets go to `writer`."""
    index = 0
    try:
        for packet in inp.demux(*([vs, ias] if ias is not None else [vs])):
            if packet.stream_index == vs.index:
                for frame in packet.decode():
                    rgb = frame.to_ndarray(format="rgb24")
                    writer.check_size(rgb, src, index)
                    pts_queue.append(frame.pts)
                    index += 1
                    yield rgb
            elif packet.dts is not None and packet.size:
                writer.audio_packet(packet)
    except av.FFmpegError as e:
        raise VQEError(f"{src}: decoding failed after {index} frames ({e}); "
                       f"the file may be corrupt or truncated") from None


class _Worker:
    """One thread that runs submitted calls in order: the encoder and the muxer then work while the model
    computes the next frames (PyAV releases the GIL while it encodes). The first error is raised in the caller
    at its next `submit` or at `close`; `abort` drops what is queued."""

    def __init__(self, depth: int = 8) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, name="vqe-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    item[0](*item[1])
                except BaseException as e:  # handed to the caller
                    self.error = e

    def submit(self, fn: Any, *args: Any) -> None:
        self._raise()
        self.queue.put((fn, args))

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self._raise()

    def abort(self) -> None:
        self.error = self.error or VQEError("aborted")
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, VQEError("an earlier error stopped the encoder")
            raise error


class _Writer:
    """The output container: the video encoder is set up from the first decoded frame's size; audio
    packets that arrive before it are held back, since the header needs every stream. Everything that touches
    the container runs on one `_Worker` thread, in the order it was asked for."""

    def __init__(self, out: av.container.OutputContainer, dst: Path, codec: str, options: dict[str, str],
                 rate: Fraction, tb: Fraction, scale: int, audio_template: Optional[av.AudioStream]):
        self.out, self.dst, self.codec, self.options = out, dst, codec, options
        self.rate, self.tb, self.scale, self.audio_template = rate, tb, scale, audio_template
        self.video: Optional[av.VideoStream] = None
        self.audio: Optional[av.AudioStream] = None
        self.pending: list[av.Packet] = []
        self.frames = 0
        self.input_size: Optional[tuple[int, int]] = None
        self.output_size: Optional[tuple[int, int]] = None
        self.worker = _Worker()

    def check_size(self, rgb: np.ndarray, src: Path, index: int) -> None:
        h, w = rgb.shape[:2]
        if self.input_size is None:
            ow, oh = w * self.scale, h * self.scale
            if ow % 2 or oh % 2:
                raise VQEError(f"{self.dst}: output size {ow}x{oh} ({src} is {w}x{h}, model scale {self.scale}) is "
                               f"odd; 4:2:0 encoding needs even sizes")
            self.input_size, self.output_size = (w, h), (ow, oh)
            self.worker.submit(self._open, ow, oh)
        elif (w, h) != self.input_size:
            raise VQEError(f"{src}: frame {index} is {w}x{h} but the first frame is "
                           f"{self.input_size[0]}x{self.input_size[1]}; size changes are not supported")

    def audio_packet(self, packet: av.Packet) -> None:
        self.worker.submit(self._audio_packet, packet)

    def encode(self, rgb: np.ndarray, pts: int) -> None:
        self.worker.submit(self._encode, rgb, pts)
        self.frames += 1

    def finish(self) -> None:
        """Flush the encoder and wait for the thread: every error of the output surfaces here at the latest."""
        self.worker.submit(self._mux, None)
        self.worker.close()

    def abort(self) -> None:
        self.worker.abort()

    def _open(self, ow: int, oh: int) -> None:
        try:
            stream = self.out.add_stream(self.codec, rate=self.rate, options=self.options)
            stream.width, stream.height, stream.pix_fmt = ow, oh, "yuv420p"
            stream.codec_context.time_base = self.tb
            stream.time_base = self.tb
            self.video = stream
            if self.audio_template is not None:
                try:
                    self.audio = self.out.add_stream_from_template(self.audio_template)
                except ValueError:  # the container does not take this audio codec: video only
                    self.audio = None
        except (av.FFmpegError, ValueError) as e:
            raise VQEError(f"{self.dst}: cannot set up the {self.codec} output stream ({e})") from None
        for packet in self.pending:
            self._audio_packet(packet)
        self.pending.clear()

    def _audio_packet(self, packet: av.Packet) -> None:
        if self.video is None:
            self.pending.append(packet)
        elif self.audio is not None:
            packet.stream = self.audio
            self._mux([packet])

    def _encode(self, rgb: np.ndarray, pts: int) -> None:
        # AREA: a 2x2 average for the chroma; swscale's default (bilinear) blurs it (4x the round-trip error)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", interpolation="AREA")
        frame.pts, frame.time_base = pts, self.tb
        self._mux(frame)

    def _mux(self, item: "av.VideoFrame | list[av.Packet] | None") -> None:
        """Encode a video frame (None flushes the encoder) and mux its packets, or mux given packets."""
        try:
            packets = item if isinstance(item, list) else self.video.encode(item)
            self.out.mux(packets)
        except (av.FFmpegError, ValueError) as e:
            raise VQEError(f"{self.dst}: writing the output failed ({e})") from None
