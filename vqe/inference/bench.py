"""`vqe bench`: how fast a restoration model runs, and how far that is from what the hardware can do.

For every model file, output size (360p = 640x360, 720p = 1280x720; the input is that divided by the
model's scale), precision and batch, one process measures back to back:

* the model alone: frames/s of its forward pass on windows already in memory (median of `repeats`);
* the whole `vqe enhance` (`enhance_video`: decode, windows, model, encode) on a short H.264 clip;
* a bare decode -> encode of the same clip (`PassThrough`: nearest-neighbour up-scaling instead of a
  model), so the overhead of everything around the model shows as a ratio;
* FLOPs per frame, counted by `torch.utils.flop_counter` (convolutions and matrix products: the
  element-wise work and `grid_sample` are not counted), and the achieved FLOP/s as a fraction of a
  square matrix product timed in the same run, on the same device, threads and precision (the faster
  of the BLAS matmul and the same product as a 1x1 convolution): our roofline ratio. A model far below it is held back by operators that do little arithmetic per byte, so the
  bench lists the operators that take most of its time (`torch.profiler`);
* the peak memory: on CUDA `max_memory_allocated`, on the CPU the resident set's rise over the run
  (sampled every 2 ms, after glibc has given freed memory back), so weights and buffers already resident
  are not counted.

The CPU thread count, load average and library versions are recorded beside the numbers, since
timings taken on a busy machine are wrong by up to 10x.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from vqe.data.codec import EncodeSettings, encode
from vqe.inference.enhance import enhance_video, frame_side, window_index
from vqe.inference.export import bench_frames, load_any
from vqe.util.atomic import atomic_path
from vqe.util.errors import VQEError

SIZES = {"360p": (640, 360), "720p": (1280, 720)}  # output width, height
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
WARMUP = 2  # untimed forward passes before the timed ones


@dataclass
class BenchConfig:
    """What `vqe bench` measures; every field is a command-line option."""

    sizes: Sequence[str] = ("360p", "720p")
    device: str = "auto"
    dtypes: Sequence[str] = ("fp32", "bf16", "fp16")  # those the device does not support are skipped, and said so
    batches: Sequence[int] = (1, 2, 4)
    frames: int = 16  # frames of the clip `vqe enhance` restores
    repeats: int = 3
    matmul_size: int = 2048
    profile: bool = True
    enhance: bool = True


class PassThrough(torch.nn.Module):
    """A "model" that only up-scales (nearest neighbour): `vqe enhance` with it is a bare decode -> encode."""

    n = 0

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[:, 0], scale_factor=self.scale, mode="nearest") if self.scale > 1 else x[:, 0]


def resolve(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise VQEError("--device cuda: CUDA is not available on this machine; use --device cpu")
    return torch.device(device)


def supported_dtypes(device: torch.device, wanted: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The precisions of `wanted` that this device runs, and why each other one is skipped."""
    unknown = [d for d in wanted if d not in DTYPES]
    if unknown:
        raise VQEError(f"unknown precision {unknown}; use some of {list(DTYPES)}")
    run, skipped = [], {}
    for name in wanted:
        if name == "fp16" and device.type == "cpu":
            skipped[name] = "fp16 autocast on the CPU has no fast kernels; benchmarked on CUDA only"
        elif name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            skipped[name] = "this GPU has no bf16"
        else:
            run.append(name)
    return run, skipped


def autocast(device: torch.device, dtype: str):
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def windows(model: torch.nn.Module, frames: np.ndarray, batch: int, device: torch.device,
            side: Optional[np.ndarray]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The model's input for `batch` consecutive frames: (batch, 2n+1, 3, h, w) in [0, 1], and side windows."""

    index = window_index(0, batch, int(model.n), len(frames))
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    x = clip[torch.tensor(index)].to(device)
    s = None if side is None else torch.as_tensor(np.asarray(side, np.float32))[torch.tensor(index)].to(device)
    return x, s


def call(model: torch.nn.Module, x: torch.Tensor, side: Optional[torch.Tensor]) -> torch.Tensor:
    return model(x) if side is None else model(x, side)


def time_forward(model: torch.nn.Module, x: torch.Tensor, side: Optional[torch.Tensor], device: torch.device,
                 dtype: str, repeats: int) -> list[float]:
    """Seconds of each of `repeats` forward passes, after WARMUP untimed ones (allocations, oneDNN's primitives
    for this shape: the first passes of a new batch size ran up to 1.5x slower)."""
    times = []
    with torch.inference_mode(), autocast(device, dtype):
        for i in range(repeats + WARMUP):
            synchronize(device)
            start = time.perf_counter()
            call(model, x, side)
            synchronize(device)
            if i >= WARMUP:
                times.append(time.perf_counter() - start)
    return times


def count_flops(model: torch.nn.Module, x: torch.Tensor, side: Optional[torch.Tensor]) -> int:
    """FLOPs of one forward pass of `x` (a multiply-add counts 2), by `torch.utils.flop_counter`."""

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        call(model, x, side)
    return int(counter.get_total_flops())


def matmul_rates(device: torch.device, dtype: str, size: int, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of a size x size matrix product in `dtype` on `device`, by the two kernels torch has for it: the
    BLAS `matmul` and the same product as a 1x1 convolution (oneDNN on the CPU, cuDNN on CUDA). They differ:
    on an AMD EPYC with AVX-512, MKL's fp32 GEMM reached 218 GFLOP/s and oneDNN's 436 on 2 cores."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device, DTYPES[dtype]) for _ in range(2))
    x = a.reshape(1, size, size // 64, 64).contiguous(memory_format=torch.channels_last)
    w = b.reshape(size, size, 1, 1).contiguous(memory_format=torch.channels_last)

    def rate(fn: Callable[[], torch.Tensor]) -> float:
        times = []
        with torch.inference_mode():
            for i in range(repeats + 1):
                synchronize(device)
                start = time.perf_counter()
                fn()
                synchronize(device)
                if i:
                    times.append(time.perf_counter() - start)
        return 2 * size ** 3 / statistics.median(times)

    return {"matmul": rate(lambda: a @ b), "conv1x1": rate(lambda: F.conv2d(x, w))}


def roofline(rates: dict[str, float]) -> float:
    """The roofline a model is held to: the faster of the two matrix-product kernels."""
    return max(rates.values())


def release_freed_memory() -> None:
    """Give freed heap memory back to the system (glibc's `malloc_trim`), so that the resident set before a
    case is what is live, not what an earlier case left in the allocator's free lists."""

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory over a `with` block: CUDA's allocator peak, or the CPU process's resident-set rise."""

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device, self.interval = device, interval
        self.peak_bytes = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:

            release_freed_memory()
            self.process = psutil.Process()
            self.base = self.process.memory_info().rss
            self.stop = threading.Event()
            self.highest = self.base
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.highest = max(self.highest, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.highest = max(self.highest, self.process.memory_info().rss)
            self.peak_bytes = self.highest - self.base


def top_operators(model: torch.nn.Module, x: torch.Tensor, side: Optional[torch.Tensor], device: torch.device,
                  count: int = 6) -> list[dict[str, Any]]:
    """The operators that take most of a forward pass's time (self time, `torch.profiler`), with their share."""

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode():
        call(model, x, side)  # warm
        with profile(activities=activities) as prof:
            call(model, x, side)
            synchronize(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, key) > 0]
    total = sum(getattr(e, key) for e in events) or 1.0
    events.sort(key=lambda e: -getattr(e, key))
    return [{"op": e.key, "share": getattr(e, key) / total, "ms": getattr(e, key) / 1000, "calls": e.count}
            for e in events[:count]]


def encode_clip(frames: np.ndarray, path: Path) -> Path:
    """The input `vqe enhance` reads: `frames` as near-lossless H.264 (as a user's decoded video would be)."""

    encode(frames, path, EncodeSettings(crf=18))
    return path


def enhance_fps(model: torch.nn.Module, clip: Path, out: Path, device: torch.device, batch: int,
                amp: bool) -> float:

    return float(enhance_video(clip, out, model, batch=batch, device=device, amp=amp, progress=False)["fps"])


@dataclass
class Case:
    """One measured configuration of one model."""

    size: str
    input_size: tuple[int, int]
    dtype: str
    batch: int
    fps: float
    ms_per_frame: float
    flops_per_frame: int
    roofline_ratio: float
    peak_memory_mb: float
    runs_s: list[float] = field(default_factory=list)


def bench_model(path: str | Path, cfg: BenchConfig, device: torch.device, dtypes: Sequence[str],
                matmul: dict[str, float], workdir: Path,
                progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every case of one model file (see the module docstring)."""

    model = load_any(path, device)
    n, scale = int(model.n), int(model.scale)
    name = Path(path).stem
    result: dict[str, Any] = {"model": str(path), "arch": getattr(model, "arch", type(model).__name__),
                              "n": n, "scale": scale, "parameters": sum(p.numel() for p in model.parameters()),
                              "cases": [], "enhance": [], "operators": {}, "skipped": []}
    for size in cfg.sizes:
        if size not in SIZES:
            raise VQEError(f"unknown size {size!r}; use some of {list(SIZES)}")
        ow, oh = SIZES[size]
        if ow % scale or oh % scale:
            raise VQEError(f"{path}: scale {scale} does not divide the {size} output {ow}x{oh}")
        w, h = ow // scale, oh // scale
        frames = bench_frames(w, h, max(cfg.frames, max(cfg.batches)))
        clip = encode_clip(frames[:cfg.frames], workdir / f"{name}_{size}.mkv")
        side = frame_side(model, clip)
        if side is not None and len(side) < len(frames):
            side = np.concatenate([side, np.repeat(side[-1:], len(frames) - len(side), axis=0)])
        onnx = getattr(model, "arch", "").startswith("onnx:")
        if onnx and (w, h) != tuple(model.size):
            result["skipped"].append(f"{size}: exported for {model.size[0]}x{model.size[1]} input, not {w}x{h}")
            continue
        for dtype in dtypes:
            if onnx and dtype != "fp32":
                result["skipped"].append(f"{size} {dtype}: an ONNX export runs in fp32")
                continue
            for batch in cfg.batches:
                progress(f"{name} {size} {dtype} batch {batch}")
                x, s = windows(model, frames, batch, device, side)
                with PeakMemory(device) as mem:
                    runs = time_forward(model, x, s, device, dtype, cfg.repeats)
                fps = batch / statistics.median(runs)
                flops = (model.flops_per_frame or 0) if onnx else count_flops(model, x[:1], None if s is None else s[:1])
                result["cases"].append(asdict(Case(size, (w, h), dtype, batch, fps, 1000 / fps, flops,
                                                   flops * fps / matmul[dtype], mem.peak_bytes / 2 ** 20, runs)))
        if cfg.profile and not onnx:  # onnxruntime's operators are not torch's: not profiled here
            x, s = windows(model, frames, 1, device, side)
            result["operators"][size] = top_operators(model, x, s, device)
        if cfg.enhance:
            result["enhance"] += enhance_cases(model, name, size, clip, device, dtypes, result["cases"], workdir,
                                               progress)
    return result


def enhance_cases(model: torch.nn.Module, name: str, size: str, clip: Path, device: torch.device,
                  dtypes: Sequence[str], cases: list[dict], workdir: Path,
                  progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Whole `vqe enhance` at batch 1 and at the model's best batch, beside a bare decode -> encode.

    `vqe enhance --amp` is bf16 autocast, so fp16 is timed for the model alone only."""
    rows = []
    progress(f"{name} {size} decode -> encode")
    bare = enhance_fps(PassThrough(int(model.scale)).to(device), clip, workdir / "bare.mp4", device, 1, False)
    for dtype in dtypes:
        mine = [c for c in cases if c["size"] == size and c["dtype"] == dtype]
        if dtype == "fp16" or not mine:
            continue
        best = max(mine, key=lambda c: c["fps"])["batch"]
        for batch in sorted({1, best}):
            progress(f"{name} {size} vqe enhance {dtype} batch {batch}")
            fps = enhance_fps(model, clip, workdir / f"{name}.mp4", device, batch, dtype == "bf16")
            rows.append({"size": size, "dtype": dtype, "batch": batch, "fps": fps, "ms_per_frame": 1000 / fps,
                         "decode_encode_fps": bare, "fraction_of_decode_encode": fps / bare})
    return rows


def environment(device: torch.device) -> dict[str, Any]:
    """What the numbers depend on besides the code."""
    env = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpus": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor(),
           "load_average_1m": os.getloadavg()[0]}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def bench(paths: Sequence[str | Path], cfg: BenchConfig = BenchConfig(),
          progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Benchmark every model file of `paths`; the result is what `vqe bench` writes as JSON."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise VQEError(f"{', '.join(missing)}: model file not found")
    if not paths:
        raise VQEError("no model file to benchmark")
    if cfg.frames < 1 or cfg.repeats < 1 or not cfg.batches or min(cfg.batches) < 1:
        raise VQEError(f"frames, repeats and batches must be positive, got {cfg.frames}, {cfg.repeats}, "
                       f"{list(cfg.batches)}")
    device = resolve(cfg.device)
    dtypes, skipped = supported_dtypes(device, cfg.dtypes)
    env = environment(device)
    started = time.perf_counter()
    rates = {d: matmul_rates(device, d, cfg.matmul_size) for d in dtypes}
    matmul = {d: roofline(r) for d, r in rates.items()}
    with tempfile.TemporaryDirectory() as tmp:
        models = [bench_model(p, cfg, device, dtypes, matmul, Path(tmp), progress) for p in paths]
    env["load_average_1m_after"] = os.getloadavg()[0]
    return {"environment": env, "config": {**asdict(cfg), "sizes": list(cfg.sizes), "dtypes": list(cfg.dtypes),
                                           "batches": list(cfg.batches)},
            "skipped_dtypes": skipped, "matmul_flops_per_s": matmul, "matmul_kernels_flops_per_s": rates, "seconds": time.perf_counter() - started,
            "models": models}


def summary_rows(result: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per model, size and precision: batch 1, the best batch and the whole `vqe enhance`."""
    for m in result["models"]:
        name = Path(m["model"]).stem + (" (onnxruntime)" if m["arch"].startswith("onnx:") else "")
        keys = sorted({(c["size"], c["dtype"]) for c in m["cases"]}, key=lambda k: (list(SIZES).index(k[0]), list(DTYPES).index(k[1])))
        for size, dtype in keys:
            cases = [c for c in m["cases"] if c["size"] == size and c["dtype"] == dtype]
            one = next(c for c in cases if c["batch"] == min(c["batch"] for c in cases))
            best = max(cases, key=lambda c: c["fps"])
            enh = [e for e in m["enhance"] if e["size"] == size and e["dtype"] == dtype]
            yield {"model": name, "size": size, "dtype": dtype, "fps_b1": one["fps"], "best_batch": best["batch"],
                   "fps_best": best["fps"], "gflops_per_frame": one["flops_per_frame"] / 1e9,
                   "roofline": best["roofline_ratio"], "peak_mb": max(c["peak_memory_mb"] for c in cases),
                   "enhance_fps": max((e["fps"] for e in enh), default=float("nan")),
                   "decode_encode_fps": enh[0]["decode_encode_fps"] if enh else float("nan")}


def markdown(result: dict[str, Any]) -> str:
    """The speed table of the README: every figure from `result`."""
    env = result["environment"]
    lines = [f"`vqe bench` on {env['device']} ({env['machine']}, {env['threads']} torch threads of {env['cpus']} "
             f"CPUs{', ' + env['gpu'] if 'gpu' in env else ''}; load average {env['load_average_1m']:.2f} before, "
             f"{env['load_average_1m_after']:.2f} after; torch {env['torch']}). Roofline, the faster matrix "
             "product (BLAS matmul or as a 1x1 conv): " + ", ".join(
                 f"{d} {v / 1e9:.0f} GFLOP/s (matmul {r['matmul'] / 1e9:.0f}, 1x1 conv {r['conv1x1'] / 1e9:.0f})"
                 for (d, v), r in zip(result["matmul_flops_per_s"].items(), result["matmul_kernels_flops_per_s"].values()))
             + ".",
             "", "| model | output | precision | model fps (batch 1) | best batch: fps | GFLOP/frame | roofline "
             "ratio | peak MB | `vqe enhance` fps | decode → encode fps |", "|" + "---|" * 10]
    for r in summary_rows(result):
        lines.append(f"| {r['model']} | {r['size']} | {r['dtype']} | {r['fps_b1']:.2f} | {r['best_batch']}: "
                     f"{r['fps_best']:.2f} | {r['gflops_per_frame']:.2f} | {r['roofline']:.1%} | {r['peak_mb']:.0f} | "
                     f"{_num(r['enhance_fps'])} | {_num(r['decode_encode_fps'])} |")
    for d, why in result["skipped_dtypes"].items():
        lines.append(f"\n{d} not run: {why}.")
    for m in result["models"]:
        for size, ops in m["operators"].items():
            top = ", ".join(f"{o['op']} {o['share']:.0%}" for o in ops[:4])
            lines.append(f"\n{Path(m['model']).stem} at {size}, batch 1, fp32: time by operator: {top}.")
    return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return "—" if value != value else f"{value:.2f}"


def figure(result: dict[str, Any], path: str | Path) -> None:
    """Frames/s per model and size: the model alone (best batch, fp32) and the whole `vqe enhance`, log scale,
    with real time (30 fps) marked."""

    matplotlib.use("Agg")

    rows = [r for r in summary_rows(result) if r["dtype"] == "fp32"]
    labels = [f"{r['model']}\n{r['size']}" for r in rows]
    xs = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows)), 3.6))
    ax.bar(xs - 0.2, [r["fps_best"] for r in rows], 0.4, label="model alone (best batch)")
    ax.bar(xs + 0.2, [r["enhance_fps"] for r in rows], 0.4, label="whole vqe enhance")
    ax.axhline(30, color="k", ls="--", lw=1, label="30 fps (real time)")
    ax.set_yscale("log")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("frames / s")
    ax.set_title(f"vqe bench on {result['environment']['device']}, {result['environment']['threads']} threads", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
