"""Evaluate enhancement methods on the test clip(s) at every test bitrate.

A method is any function from an encode of the manifest to enhanced frames at ground-truth size.
Each method gets `results/eval/<method>.json` (every metric at every rate point) and
`results/rd/<method>.csv` (the rate-distortion columns DVC plots); `vqe.evaluation.report` assembles Table 1.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from vqe.config import BASELINES, EvalParams
from vqe.data.codec import frame_packets
from vqe.data.manifest import EncodeEntry, Manifest
from vqe.data.span import Runs, scored_runs
from vqe.evaluation.baselines import run_baseline
from vqe.inference.enhance import frame_side, restore_span
from vqe.metrics.fidelity import resolve_device
from vqe.metrics.panel import Reference, measure_runs
from vqe.models.build import load_model
from vqe.util.atomic import atomic_path, write_json, write_text
from vqe.util.errors import VQEError

RD_COLUMNS = ("kbps", "kbps_scored", "bpp", "psnr", "ssim", "lpips", "vmaf")
# A method maps one encode and the runs to score to its enhanced frames, one (len(run), H, W, 3) array per run.
Method = Callable[[EncodeEntry, Runs], list[np.ndarray]]


def eval_runs(params: EvalParams, length: int) -> Runs:
    """The span `eval.segments` x `eval.segment_frames` of a test clip of `length` frames."""
    return scored_runs(length, params.segments, params.segment_frames)


def sample_frame(runs: Runs) -> int:
    """The frame kept for visual comparisons: the middle frame of the middle run."""
    run = runs[len(runs) // 2]
    return run[len(run) // 2]


def kbps_of(bits: np.ndarray, frames: list[int], fps: float) -> float:
    """The bitrate of a set of frames' own packets (bits per frame x frame rate)."""
    return float(bits[frames].sum()) / len(frames) * fps / 1000.0


def evaluate_methods(methods: dict[str, Method], manifest: Manifest, params: EvalParams,
                     results_dir: str | Path = "results",
                     runs: Optional[Callable[[int], Runs]] = None, split: str = "test",
                     kbps: Optional[float] = None) -> dict[str, list[dict]]:
    """Measure every method on every encode of `split` (at bitrate `kbps` only, if given); write and return
    the per-rate rows.

    `runs(length)` picks the scored frames of a clip (default `eval_runs`, the `eval.segments` span);
    each row records them (`frames_scored`) and their own bitrate (`kbps_scored`) beside the stream's.
    """
    entries = [e for e in manifest.select(split) if kbps is None or e.kbps_target == kbps]
    if not entries:
        raise VQEError(f"{manifest.root}: the manifest has no {split} encodes"
                       + (f" at {kbps:g} kbps" if kbps is not None else ""))
    runs = runs or (lambda length: eval_runs(params, length))
    device = None if params.device == "auto" else params.device  # None: CUDA when present
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    for clip in sorted({e.clip for e in entries}):
        span = runs(manifest.clip(clip).frames)
        scored = [t for run in span for t in run]
        gt = manifest.gt(clip)
        refs = [Reference(np.asarray(gt[run]), device=device, fps=manifest.clip(clip).fps, batch_size=params.batch)
                for run in span]
        todo = [(m, e) for m in methods for e in entries if e.clip == clip]
        bits = {e.rate_id: frame_packets(manifest.root / e.stream)[0] for e in entries if e.clip == clip}
        for method, entry in tqdm(todo, desc=f"evaluate {clip}", unit="run"):
            t0 = time.perf_counter()
            outs = methods[method](entry, span)
            speed = len(scored) / (time.perf_counter() - t0)  # the method's own speed, before scoring
            metrics = measure_runs(outs, refs, vmaf=params.vmaf)
            if entry.kbps_target == params.main_kbps and split == "test" and clip == sample_clip(manifest):
                t = sample_frame(span)
                save_png(Path(results_dir) / "samples" / f"{method}.png", _frame_at(outs, span, t))
            rows[method].append({"clip": clip, "rate_id": entry.rate_id, "kbps_target": entry.kbps_target,
                                 "kbps": entry.kbps, "kbps_scored": kbps_of(bits[entry.rate_id], scored, entry.fps),
                                 "bpp": entry.bpp, **metrics, "enhance_fps": speed, "frames_scored": scored,
                                 **getattr(methods[method], "info", {})})
    for method, method_rows in rows.items():
        write_eval(method, method_rows, results_dir)
    return rows


def _frame_at(outs: list[np.ndarray], span: Runs, t: int) -> np.ndarray:
    for out, run in zip(outs, span):
        if t in run:
            return out[run.index(t)]
    raise VQEError(f"frame {t} is not in the scored span")


def whole_clip_method(enhance: Callable[[EncodeEntry], np.ndarray]) -> Method:
    """A method that enhances a whole encode at once (the baselines), scored on the runs only."""

    def run(entry: EncodeEntry, span: Runs) -> list[np.ndarray]:
        frames = enhance(entry)
        return [np.asarray(frames[r]) for r in span]

    return run


def model_method(model: "torch.nn.Module", manifest: Manifest, *, batch: int = 4,
                 device: "str | torch.device" = "cpu") -> Method:
    """A trained model as an evaluation method: sliding windows over the decoded frames of an encode.

    Super-resolving models (scale > 1) read the decoded low-res frames; same-resolution ones the
    bicubic up-scaled decode (the `input` row), exactly what they were trained on. Each run is restored
    exactly as the whole clip would be (its windows see the real neighbouring frames), at the cost of
    its own windows only.
    """

    def run(entry: EncodeEntry, span: Runs) -> list[np.ndarray]:
        frames = manifest.lq(entry, low_res=model.scale > 1)
        side = frame_side(model, manifest.root / entry.stream)  # MFQE 2.0's PQF labels from the bitstream
        return [restore_span(model, frames, r[0], len(r), batch=batch, device=device, side=side) for r in span]

    return run


RELEASE_SUFFIX = "_release"  # method `<id>_release`: the committed weights models/release/<id>.pt
ADAPT_SUFFIX = "_adapt"  # method `<model id>_adapt`: that model adapted to each encode first (`vqe enhance --adapt`)


def method_by_name(name: str, manifest: Manifest, params: EvalParams, models_dir: str | Path = "models") -> Method:
    """A baseline by its name (`input`, `lanczos`, `deblock`), the trained model `<models_dir>/<name>.pt`, or
    for `<id>_release` the released weights `<models_dir>/release/<id>.pt` (`model_path`). The adapted rows
    `<model id>_adapt` are `vqe.inference.adapt.adapt_method_by_name` (notebook 02b picks)."""

    if name in BASELINES:
        return whole_clip_method(partial(run_baseline, name, manifest, deblock_filter=params.deblock_filter))

    device = eval_device(params)
    return model_method(load_model(model_path(name, models_dir), device), manifest, batch=params.enhance_batch,
                        device=device)


def model_path(name: str, models_dir: str | Path = "models") -> Path:
    """The weights of model id `name`: `<models_dir>/release/<id>.pt` for `<id>_release`, else `<models_dir>/<name>.pt`;
    an error naming the file when it does not exist."""
    path = release_path(name, models_dir) or Path(models_dir) / f"{name}.pt"
    if not path.is_file():
        raise VQEError(f"{path}: no baseline or trained model named {name!r}")
    return path


def eval_device(params: EvalParams) -> "torch.device":
    return resolve_device(params.device)


def release_path(name: str, models_dir: str | Path = "models") -> Optional[Path]:
    """`<models_dir>/release/<id>.pt` for a method `<id>_release`, else None."""
    if not name.endswith(RELEASE_SUFFIX):
        return None
    return Path(models_dir) / "release" / f"{name[:-len(RELEASE_SUFFIX)]}.pt"


def sample_clip(manifest: Manifest) -> str:
    """The test clip whose middle frame at the main bitrate is kept for visual comparisons."""
    return sorted({e.clip for e in manifest.select("test")})[0]


def sample_point(manifest: Manifest, params: EvalParams) -> tuple[str, int]:
    """(clip, frame) of the sample every evaluation saves to results/samples/<method>.png."""
    clip = sample_clip(manifest)
    return clip, sample_frame(eval_runs(params, manifest.clip(clip).frames))


def save_png(path: Path, frame: np.ndarray) -> None:
    """The middle frame at the main bitrate, kept for the visual comparison figures."""

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(frame)).save(tmp, format="PNG")


def per_rate(rows: list[dict]) -> list[dict]:
    """Average the test clips at each rate point (one row per rate, sorted by bitrate)."""
    by_rate: dict[str, list[dict]] = {}
    for r in rows:
        by_rate.setdefault(r["rate_id"], []).append(r)
    merged = []
    for rate_id, group in by_rate.items():
        row = {"rate_id": rate_id, "kbps_target": group[0]["kbps_target"]}
        for key, value in group[0].items():
            if isinstance(value, float) and key != "kbps_target":
                row[key] = float(np.mean([g[key] for g in group]))
        row["frames_scored"] = {g["clip"]: g["frames_scored"] for g in group if "frames_scored" in g}
        merged.append(row)
    return sorted(merged, key=lambda r: r["kbps"])


def write_eval(method: str, rows: list[dict], results_dir: str | Path) -> None:
    results_dir = Path(results_dir)
    write_json(results_dir / "eval" / f"{method}.json", {"method": method, "clips": rows, "rates": per_rate(rows)})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RD_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in per_rate(rows):
        writer.writerow({k: round(r[k], 6) for k in RD_COLUMNS})
    write_text(results_dir / "rd" / f"{method}.csv", buf.getvalue())


def load_evals(methods: Sequence[str], results_dir: str | Path = "results") -> dict[str, dict]:
    """`results/eval/<method>.json` of each method (`eval.methods`), keyed by method id, in that order.

    The list comes from params, never from the files present, so a stale result of a method no longer
    configured cannot slip into a table, and a missing one is an error naming its file."""
    evals = {}
    for method in methods:
        path = Path(results_dir, "eval", f"{method}.json")
        if not path.is_file():
            raise VQEError(f"{path}: not found; run the evaluate@{method} (or baselines@{method}) stage")
        evals[method] = json.loads(path.read_text())
    return evals
