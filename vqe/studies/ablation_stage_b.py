"""The ablation study's phase-2 variants (`ablation.variants`): trained on top of their Stage A variant at
the study's budget, then scored like Fig. 5 (`vqe.studies.ablation.scorer`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vqe.config import Params
from vqe.data.manifest import Manifest
from vqe.metrics.fidelity import resolve_device
from vqe.models.build import load_model
from vqe.studies.ablation import scorer, stage_a_path, variant_params
from vqe.train.stage_b import train_stage_b
from vqe.util.atomic import write_json
from vqe.util.errors import VQEError


def run_variant(params: Params, name: str, models_dir: str | Path = "models/ablation",
                out_path: str | Path = "results/ablations/full.json",
                run_dir: str | Path = "checkpoints/ablation", progress: bool = True) -> dict[str, Any]:
    """Train variant `name` for every seed on its Stage A variant, score it, write `out_path`."""

    manifest = Manifest.load(params.synth.out_dir)
    device = resolve_device(params.eval.device)
    runs, score = [], None
    for seed in params.ablation.seeds:
        p = variant_params(params, name, seed)
        a_path = stage_a_path(models_dir, params.ablation.variants[name].stage_a, seed)
        if not a_path.is_file():
            raise VQEError(f"{a_path}: Stage A of ablation variant {name!r} not found; run its ablation_stage_a stage")
        model_path = Path(run_dir) / name / f"seed{seed}" / "model.pt"
        t0 = time.perf_counter()
        summary = train_stage_b(p, stage_a_path=a_path, model_path=model_path, run_dir=model_path.parent,
                                live_dir=None, summary_path=None, progress=progress, validate=False)
        seconds = time.perf_counter() - t0
        model = load_model(model_path, device)
        if score is None:
            score = scorer(p, manifest, model.n, model.scale > 1, device)
        runs.append({"seed": seed, **score(model), "train_seconds": seconds,
                     "iterations": summary.get("iterations", 0)})
    assert score is not None
    result = {"variant": name, "stage_a": params.ablation.variants[name].stage_a,
              "overrides": list(params.ablation.variants[name].set), "input": score.input_scores, "runs": runs}
    write_json(out_path, result)
    return result
