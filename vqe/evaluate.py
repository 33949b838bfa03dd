"""Evaluate enhancement methods on the test clip(s) at every test bitrate.

A method is any function from an encode of the manifest to enhanced frames at ground-truth size.
Each method gets `results/eval/<method>.json` (every metric at every rate point) and
`results/rd/<method>.csv` (the rate-distortion columns DVC plots); `vqe.report` assembles Table 1.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm.auto import tqdm

from vqe.atomic import atomic_path, write_json, write_text
from vqe.config import EvalParams
from vqe.data.manifest import EncodeEntry, Manifest
from vqe.errors import VQEError
from vqe.metrics import Reference, measure

RD_COLUMNS = ("kbps", "bpp", "psnr", "ssim", "lpips", "vmaf")
Method = Callable[[EncodeEntry], np.ndarray]


def evaluate_methods(methods: dict[str, Method], manifest: Manifest, params: EvalParams,
                     results_dir: str | Path = "results") -> dict[str, list[dict]]:
    """Measure every method on every test encode; write and return the per-rate rows."""
    entries = manifest.select("test")
    if not entries:
        raise VQEError(f"{manifest.root}: the manifest has no test encodes")
    device = None if params.device == "auto" else params.device  # None: CUDA when present
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    for clip in sorted({e.clip for e in entries}):
        ref = Reference(_frames(manifest.gt(clip), params.max_frames), device=device,
                        fps=manifest.clip(clip).fps, batch_size=params.batch)
        todo = [(m, e) for m in methods for e in entries if e.clip == clip]
        for method, entry in tqdm(todo, desc=f"evaluate {clip}", unit="run"):
            t0 = time.perf_counter()
            result = methods[method](entry)
            speed = len(result) / (time.perf_counter() - t0)  # the method's own speed, before scoring
            out = _frames(result, params.max_frames)
            metrics = measure(out, ref, vmaf=params.vmaf)
            if entry.kbps_target == params.main_kbps and clip == sample_clip(manifest):
                save_png(Path(results_dir) / "samples" / f"{method}.png", out[len(out) // 2])
            rows[method].append({"clip": clip, "rate_id": entry.rate_id, "kbps_target": entry.kbps_target,
                                 "kbps": entry.kbps, "bpp": entry.bpp, **metrics, "enhance_fps": speed})
    for method, method_rows in rows.items():
        write_eval(method, method_rows, results_dir)
    return rows


def model_method(model: "torch.nn.Module", manifest: Manifest, *, batch: int = 4,
                 device: "str | torch.device" = "cpu", max_frames: Optional[int] = None) -> Method:
    """A trained model as an evaluation method: sliding windows over the decoded frames of an encode.

    Super-resolving models (scale > 1) read the decoded low-res frames; same-resolution ones the
    bicubic up-scaled decode (the `input` row), exactly what they were trained on. With `max_frames`
    only the first frames are enhanced (their windows still see the real following frames).
    """
    from vqe.enhance import enhance_frames

    def run(entry: EncodeEntry) -> np.ndarray:
        frames = manifest.lq(entry, low_res=model.scale > 1)
        count = min(max_frames or len(frames), len(frames))
        return np.stack(list(enhance_frames(model, frames, batch=batch, device=device, stop=count)))

    return run


def method_by_name(name: str, manifest: Manifest, params: EvalParams, models_dir: str | Path = "models") -> Method:
    """A baseline by its name (`input`, `lanczos`, `deblock`), or the trained model `<models_dir>/<name>.pt`."""
    from functools import partial

    from vqe.baselines import run_baseline
    from vqe.config import BASELINES

    if name in BASELINES:
        return partial(run_baseline, name, manifest, deblock_filter=params.deblock_filter)
    path = Path(models_dir) / f"{name}.pt"
    if not path.is_file():
        raise VQEError(f"{path}: no baseline or trained model named {name!r}")
    from vqe.metrics.fidelity import resolve_device
    from vqe.models import load_model

    device = resolve_device(None if params.device == "auto" else params.device)
    return model_method(load_model(path, device), manifest, batch=params.enhance_batch, device=device,
                        max_frames=params.max_frames)


def sample_clip(manifest: Manifest) -> str:
    """The test clip whose middle frame at the main bitrate is kept for visual comparisons."""
    return sorted({e.clip for e in manifest.select("test")})[0]


def save_png(path: Path, frame: np.ndarray) -> None:
    """The middle frame at the main bitrate, kept for the visual comparison figures."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(frame)).save(tmp, format="PNG")


def _frames(frames: np.ndarray, max_frames: Optional[int]) -> np.ndarray:
    return np.asarray(frames[:max_frames] if max_frames else frames)


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


def load_evals(results_dir: str | Path = "results") -> dict[str, dict]:
    """Every `results/eval/<method>.json`, keyed by method id."""
    evals = {}
    for path in sorted(Path(results_dir, "eval").glob("*.json")):
        data = json.loads(path.read_text())
        evals[data["method"]] = data
    return evals
