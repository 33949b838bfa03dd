"""The quality-vs-compute study: each training recipe's validation and test gain against wall-clock seconds.

None of the seed papers publishes this curve, and on 2 CPU cores it is what decides a recipe: the one
that gains most per second wins, not the one that is best at convergence. A recipe is a name plus dotlist
overrides of `stage_a` (`scaling.recipes`). The profile's own Stage A is the recipe `main`: `train_stage_a`
logs the same test span (`test_span_scores`), so the pipeline does not train it twice. Every other recipe trains through the shared Stage A phase with its
usual validation (the val split) plus a test span (`scaling.segments` x `scaling.segment_frames` spread
over each test clip, at `eval.main_kbps`), logged with dvclive. `collect` reads those logs back into
`results/scaling.json`, which the figure plots on a log time axis.

The test curve is reported, not used: no recipe or stopping point is chosen from it by this code.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from vqe.config import Params, with_overrides
from vqe.train.core.validate import test_span_scores
from vqe.train.stage_a import train_stage_a
from vqe.util.atomic import write_json
from vqe.util.errors import VQEError

CURVE_KEYS = ("seconds", "psnr_gain", "lpips_gain", "test_psnr_gain", "test_lpips_gain")
MAIN = "main"  # the profile's own Stage A: train_stage_a's run (results/train/stage_a{,.json})


def recipe_params(params: Params, name: str) -> Params:
    """`params` with recipe `name`'s overrides applied (errors name the recipe)."""
    if name not in params.scaling.recipes:
        raise VQEError(f"scaling.recipes: no recipe {name!r} (have {sorted(params.scaling.recipes)})")
    return with_overrides(params, list(params.scaling.recipes[name]), f"scaling.recipes.{name}")


def run_recipe(params: Params, name: str, out_dir: str | Path = "results/scaling",
               models_dir: str | Path = "models/scaling", runs_dir: str | Path = "checkpoints/scaling",
               progress: bool = True) -> dict[str, Any]:
    """Train recipe `name` (resumable: its checkpoint lives in `runs_dir/name`); returns its summary."""
    p = recipe_params(params, name)
    out_dir = Path(out_dir)
    return train_stage_a(p, model_path=Path(models_dir) / f"{name}.pt", run_dir=Path(runs_dir) / name,
                         live_dir=out_dir / name, summary_path=out_dir / f"{name}.json", progress=progress,
                         extra_scores=test_span_scores(p))


def read_curve(live_dir: str | Path, keys: tuple[str, ...] = CURVE_KEYS,
               required: tuple[str, ...] = CURVE_KEYS) -> list[dict[str, float]]:
    """The validation points a dvclive run logged: one dict per validation step with its iteration and
    `keys` (those of `keys` not logged are left out, unless `required`)."""
    folder = Path(live_dir) / "plots" / "metrics" / "val"
    columns: dict[str, dict[int, float]] = {}
    for key in keys:
        path = folder / f"{key}.tsv"
        if not path.is_file():
            if key in required:
                raise VQEError(f"{path}: missing; the run has not logged a validation with {key!r}")
            continue
        with path.open() as f:
            columns[key] = {int(row["step"]): float(row[key]) for row in csv.DictReader(f, delimiter="\t")}
    if not columns:
        raise VQEError(f"{folder}: no validation logged")
    steps = sorted(set.intersection(*(set(c) for c in columns.values())))
    return [{"iteration": s, **{k: c[s] for k, c in columns.items()}} for s in steps]


def collect(params: Params, out_dir: str | Path = "results/scaling",
            path: str | Path = "results/scaling.json",
            main_dir: str | Path = "results/train/stage_a") -> dict[str, Any]:
    """Every recipe's logged curve and summary into one JSON (the figure's and the README's source):
    first `main`, the profile's Stage A (its dvclive folder `main_dir`, its summary `main_dir`.json)."""
    out_dir, main_dir = Path(out_dir), Path(main_dir)
    runs = {MAIN: ([], main_dir, "train_stage_a")}
    runs.update({name: (list(o), out_dir / name, "scaling_run") for name, o in params.scaling.recipes.items()})
    recipes = {}
    for name, (overrides, live_dir, stage) in runs.items():
        summary_path = live_dir.with_name(live_dir.name + ".json")
        if not summary_path.is_file():
            raise VQEError(f"{summary_path}: missing; run the {stage} stage")

        summary = json.loads(summary_path.read_text())
        recipes[name] = {"overrides": overrides, "parameters": summary["parameters"],
                         "iterations": summary["iterations"], "seconds": summary["seconds"],
                         "it_per_s": summary["it_per_s"], "threads": summary["threads"],
                         "curve": read_curve(live_dir)}
    result = {"stage": "stage_a", "kbps": params.eval.main_kbps,
              "span": {"segments": params.scaling.segments, "segment_frames": params.scaling.segment_frames},
              "val_split": "val", "recipes": recipes}
    write_json(Path(path), result)
    return result
