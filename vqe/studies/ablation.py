"""The ablation study (main paper §IV-D, Fig. 5): each variant retrained at one reduced budget.

A variant is a Stage A variant (`ablation.stage_as`: e.g. without ECBAM) plus dotlist overrides of
the phase-2 parameters (`ablation.variants`: no Stage B, no ping-pong, spatial D only, flow loss).
For every seed, each Stage A variant is trained once (`ablation_stage_a.train_stage_as`), each phase-2 variant
on top of it (`ablation_stage_b.run_variant`), and the result is scored on consecutive frames of the test clip(s) at the
main bitrate: PSNR, LPIPS and tLP, the three bars of Fig. 5. `summarise` pairs every variant with the
full model of the same seed and reports the mean and spread of the differences over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqe.config import Params, with_overrides
from vqe.data.manifest import Manifest
from vqe.train.core.validate import Validator
from vqe.util.atomic import write_json
from vqe.util.errors import VQEError

METRICS = ("psnr", "lpips", "tlp")

# The changes the main paper reports in §IV-D against its full model (its Fig. 5 has no numbers):
# no Stage B +1.1 dB; no ping-pong LPIPS +0.02; spatial D only -0.2 dB and LPIPS +0.015; no ECBAM -0.2 dB.
PAPER_DELTAS = {"no_stage_b": {"d_psnr": 1.1}, "no_pingpong": {"d_lpips": 0.02},
                "spatial_d": {"d_psnr": -0.2, "d_lpips": 0.015}, "no_ecbam": {"d_psnr": -0.2}}


def budget(params: Params, seed: int) -> list[str]:
    """The reduced budget every variant shares: iterations, warm-up, seed, and no validation runs.
    No EMA: over a few dozen iterations an EMA of decay 0.99-0.995 keeps mostly the initial weights
    (torch's AveragedModel starts from the first update, without bias correction), so every variant
    would score as its initialisation."""
    ab = params.ablation
    return [f"seed={seed}", f"stage_a.train.iters={ab.stage_a_iters}", f"stage_b.train.iters={ab.stage_b_iters}",
            "stage_a.train.ema=0", "stage_b.train.ema=0",
            f"stage_b.train.warmup={ab.warmup}", f"stage_b.train.ramp={ab.ramp}",
            f"stage_a.train.ckpt_every={max(1, ab.stage_a_iters // 4)}",
            f"stage_b.train.ckpt_every={max(1, ab.stage_b_iters // 4)}"]


def stage_a_params(params: Params, name: str, seed: int) -> Params:
    """The parameters of Stage A variant `name` at the ablation budget for `seed`."""
    if name not in params.ablation.stage_as:
        raise VQEError(f"ablation.stage_as: no Stage A variant {name!r} (have {sorted(params.ablation.stage_as)})")
    return with_overrides(params, budget(params, seed) + list(params.ablation.stage_as[name]),
                          f"ablation.stage_as.{name}")


def variant_params(params: Params, name: str, seed: int) -> Params:
    """The parameters of variant `name`: its Stage A variant's, then its own phase-2 overrides."""
    if name not in params.ablation.variants:
        raise VQEError(f"ablation.variants: no variant {name!r} (have {sorted(params.ablation.variants)})")
    v = params.ablation.variants[name]
    return with_overrides(stage_a_params(params, v.stage_a, seed), list(v.set), f"ablation.variants.{name}")


def stage_a_path(models_dir: str | Path, name: str, seed: int) -> Path:
    return Path(models_dir) / f"stage_a_{name}" / f"seed{seed}.pt"


def scorer(params: Params, manifest: Manifest, n: int, low_res: bool, device: torch.device) -> Validator:
    """PSNR, LPIPS and tLP on `eval_frames` consecutive frames of the test clip(s) at the main bitrate."""
    return Validator(manifest, n, low_res=low_res, kbps=params.eval.main_kbps, frames=params.ablation.eval_frames,
                     device=device, split="test", consecutive=True)


def spread(values: list[float]) -> dict[str, float]:
    """Mean and spread (half the range: with two seeds, each run is mean +- spread) of `values`."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "spread": float((a.max() - a.min()) / 2)}


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per variant: the absolute scores, and their differences from the full model of the same seed."""
    if "full" not in results:
        raise VQEError("ablation results: the 'full' reference variant is missing")
    full = {r["seed"]: r for r in results["full"]["runs"]}
    out: dict[str, Any] = {"reference": "full", "seeds": sorted(full), "variants": {}}
    for name, res in results.items():
        runs = [r for r in res["runs"] if r["seed"] in full]
        if len(runs) != len(full):
            raise VQEError(f"ablation variant {name!r}: seeds {[r['seed'] for r in res['runs']]} "
                           f"do not match the full model's {sorted(full)}")
        out["variants"][name] = {
            **{m: spread([r[m] for r in runs]) for m in METRICS},
            **{f"d_{m}": spread([r[m] - full[r['seed']][m] for r in runs]) for m in METRICS},
            "train_seconds": float(sum(r["train_seconds"] for r in runs))}
    return out


def load_results(folder: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """`<folder>/<variant>.json` for each variant, in the given order."""
    results = {}
    for name in names:
        path = Path(folder) / f"{name}.json"
        if not path.is_file():
            raise VQEError(f"{path}: ablation result not found; run the ablation@{name} stage")
        results[name] = json.loads(path.read_text())
    return results


def write_summary(results: dict[str, dict[str, Any]], path: str | Path = "results/ablations.json") -> dict[str, Any]:
    """`results/ablations.json` (DVC metrics): `summarise` of the variant results."""
    summary = summarise(results)
    write_json(path, summary)
    return summary
