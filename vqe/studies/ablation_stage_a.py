"""The ablation study's Stage A variants (`ablation.stage_as`), each trained once per seed at the study's
budget; the phase-2 variants (`vqe.studies.ablation_stage_b`) start from them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vqe.config import Params
from vqe.studies.ablation import stage_a_params, stage_a_path
from vqe.train.stage_a import train_stage_a


def train_stage_as(params: Params, name: str, models_dir: str | Path = "models/ablation",
                   run_dir: str | Path = "checkpoints/ablation", progress: bool = True) -> list[dict[str, Any]]:
    """Train Stage A variant `name` once per seed; returns each run's summary."""

    summaries = []
    for seed in params.ablation.seeds:
        p = stage_a_params(params, name, seed)
        t0 = time.perf_counter()
        s = train_stage_a(p, model_path=stage_a_path(models_dir, name, seed),
                          run_dir=Path(run_dir) / f"stage_a_{name}" / f"seed{seed}", live_dir=None,
                          summary_path=None, progress=progress, validate=False)
        summaries.append({"seed": seed, "seconds": time.perf_counter() - t0, "iterations": s.get("iterations")})
    return summaries
