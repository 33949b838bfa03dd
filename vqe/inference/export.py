"""ONNX export of a trained model, and the onnxruntime model that `vqe enhance` and `vqe bench` run like a
PyTorch one.

The export (`torch.onnx.export`, the dynamo exporter) has a free batch axis and a fixed frame size: the
models pad to their strides and crop with sizes computed from the input, which the exporter does not
carry through symbolically (a dynamic-size export of the fast restorer ran and then failed in
onnxruntime on a broadcast of 320 by 360). So a file is made for one input size, `--size`, and says so.
Every export is checked before it is kept: onnxruntime and PyTorch restore the same real frames (a
photo, panned as in `vqe.inference.bench`), and a maximum absolute difference above `tolerance` is an error and
leaves no file.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import onnxruntime as ort
import torch
from skimage import data
from skimage.transform import resize
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vqe.models.build import load_model
from vqe.util.atomic import atomic_path
from vqe.util.errors import VQEError

INPUT, OUTPUT = "frames", "restored"
TOLERANCE = 1e-3  # on [0, 1] pixels: a quarter of one 8-bit step


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_windows(n: int, width: int, height: int, batch: int = 2) -> torch.Tensor:
    """(batch, 2n+1, 3, height, width) windows of real image content, in [0, 1]."""

    frames = bench_frames(width, height, batch + 2 * n)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    return torch.stack([clip[t: t + 2 * n + 1] for t in range(batch)])


def export_onnx(model_path: str | Path, out_path: str | Path, width: int, height: int, *,
                opset: int = 18, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Export `model_path` for inputs of `width` x `height` to `out_path`, checked against PyTorch."""

    src, dst = Path(model_path), Path(out_path)
    model = load_model(src, "cpu").to(memory_format=torch.contiguous_format)
    arch = getattr(model, "arch", type(model).__name__)
    if getattr(model, "needs_side", False):
        raise VQEError(f"{src}: {arch} reads side information from the bitstream; its export is not supported")
    n, scale = int(model.n), int(model.scale)
    if width < 16 or height < 16:
        raise VQEError(f"--size {width}x{height}: frames must be at least 16x16")
    x = reference_windows(n, width, height)
    with torch.inference_mode():
        expected = model(x).numpy()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x[:1])
    started = time.perf_counter()
    batch = torch.export.Dim("batch", min=1, max=1024)
    with atomic_path(dst) as tmp:
        try:
            program = torch.onnx.export(model, (x,), input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True,
                                        optimize=True, verbose=False)
        except Exception as e:  # the exporter raises many kinds; all mean "this model does not export"
            raise VQEError(f"{src}: {arch} does not export to ONNX ({type(e).__name__}: {str(e)[:300]})") from None
        meta = {"vqe_arch": arch, "vqe_n": str(n), "vqe_scale": str(scale), "vqe_width": str(width),
                "vqe_height": str(height), "vqe_source_sha256": _sha256(src),
                "vqe_flops_per_frame": str(int(counter.get_total_flops()))}
        program.model.metadata_props.update(meta)
        program.save(tmp)
        session = _session(tmp)
        got = session.run(None, {INPUT: x.numpy()})[0]
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise VQEError(f"{src}: the ONNX export differs from PyTorch by {diff:.2e} (> {tolerance:g}) on real "
                           f"frames; nothing written")
        size = tmp.stat().st_size
    return {"model": str(src), "onnx": str(dst), "arch": arch, "n": n, "scale": scale, "input_size": [width, height],
            "max_abs_diff": diff, "seconds": time.perf_counter() - started, "bytes": size, "opset": opset}


def _session(path: Path, threads: Optional[int] = None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()  # as many as torch: a fair comparison
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise VQEError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {str(e)[:200]})") from None


class OnnxModel(nn.Module):
    """An exported model run by onnxruntime on the CPU, with the attributes of the model contract (`n`,
    `scale`, `arch`): `vqe enhance` and `vqe bench` take it where they take a PyTorch model."""

    def __init__(self, path: str | Path, threads: Optional[int] = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.n, self.scale = int(meta["vqe_n"]), int(meta["vqe_scale"])
            self.size = (int(meta["vqe_width"]), int(meta["vqe_height"]))
        except (KeyError, ValueError):
            raise VQEError(f"{self.path}: not an ONNX file of `vqe export` (no vqe_n/vqe_scale/vqe_width "
                           "metadata)") from None
        self.arch = f"onnx:{meta.get('vqe_arch', '?')}"
        self.flops_per_frame = int(meta.get("vqe_flops_per_frame", 0)) or None
        self.meta = {k: v for k, v in meta.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, h = self.size
        if x.dim() != 5 or tuple(x.shape[1:]) != (2 * self.n + 1, 3, h, w):
            raise VQEError(f"{self.path} was exported for windows of {2 * self.n + 1} frames of {w}x{h}; got input "
                           f"{tuple(x.shape)} (export again with `vqe export --size {x.shape[-1]}x{x.shape[-2]}`)")
        y = self.session.run(None, {INPUT: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(y).to(x.device)


def load_any(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A model file as `vqe enhance` and `vqe bench` take it: a `.onnx` export (onnxruntime, CPU only) or a
    PyTorch model (`vqe.models.build.load_model`)."""
    path = Path(path)
    if path.suffix != ".onnx":

        return load_model(path, device)
    if not path.is_file():
        raise VQEError(f"{path}: model file not found")
    if torch.device(device).type != "cpu":
        raise VQEError(f"{path}: ONNX models run on the CPU here (onnxruntime's CPU provider); use --device cpu")
    return OnnxModel(path)


def bench_frames(width: int, height: int, count: int) -> np.ndarray:
    """A deterministic textured clip (count, height, width, 3) uint8 that pans by 2 px a frame: speed does
    not depend on content, except the codec's, which needs a natural image to do natural work."""

    photo = data.astronaut()
    big = resize(photo, (height + 2 * count, width + 2 * count), order=1, anti_aliasing=True)
    big = (big * 255).round().astype(np.uint8)
    return np.stack([big[2 * t: 2 * t + height, 2 * t: 2 * t + width] for t in range(count)])
