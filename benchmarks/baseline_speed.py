"""Iterations per second of every Table 1 baseline on this host, and the iterations that match Stage A's wall time.

The fair budget of Table 1 is wall time: every learned row trains about as long as the profile's Stage A. This times `--iters` training iterations of each row (early and late
iterations, after one untimed iteration each; no validation or checkpoints) and writes, per row, its it/s and the iteration count that
would take as long as Stage A's training (its iterations timed the same way, on the same host): what `conf/profile/<profile>.yaml` sets `baselines.systems.<row>.train.iters` to.

    python benchmarks/baseline_speed.py --iters 12      # -> results/benchmarks/baseline_speed.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from vqe.config import load_params
from vqe.data.dataset import TrainPatches
from vqe.data.manifest import Manifest
from vqe.train.baseline import baseline_phase, build_baseline
from vqe.util.atomic import write_json


def timed_steps(phase, data: TrainPatches, batch: int, iters: int, first: int) -> float:
    """Seconds per training step over `iters` batches starting at iteration `first`, after one untimed step
    (allocations, oneDNN kernels)."""
    batches = [torch.utils.data.default_collate([data[k * batch + j] for j in range(batch)]) for k in range(iters + 1)]
    phase.step(batches[0], first)
    start = time.perf_counter()
    for k, b in enumerate(batches[1:], 1):
        phase.step(b, first + k)
    return (time.perf_counter() - start) / iters


def time_row(params, name: str, iters: int) -> dict:
    cfg = params.baselines.train_for(name)
    torch.manual_seed(params.seed)
    model = build_baseline(params, name).train()
    phase, _, _ = baseline_phase(name, params.baselines.systems[name], model, cfg, torch.device("cpu"))
    manifest = Manifest.load(params.synth.out_dir)
    side = model.training_side(manifest, params.seed)[0] if getattr(model, "needs_side", False) else None
    data = TrainPatches(manifest, "train", model.n, cfg.patch, low_res=True, seed=0, frames_out=cfg.frames,
                        side=side)
    # the warm-up (or SUPERVEGAN's first phase) runs fewer terms than the rest: time both kinds of iteration
    early_share = 0.25 if model.arch == "supervegan" else cfg.warmup / cfg.iters
    seconds = {"late": timed_steps(phase, data, cfg.batch, iters, cfg.iters - iters)}
    if early_share > 0:
        seconds["early"] = timed_steps(phase, data, cfg.batch, iters, 1)
    mean = early_share * seconds.get("early", 0.0) + (1 - early_share) * seconds["late"]
    return {"it_per_s": 1 / mean, "s_per_it": seconds, "early_share": early_share, "configured_iters": cfg.iters,
            "batch": cfg.batch, "patch": cfg.patch, "frames": cfg.frames,
            "parameters": sum(p.numel() for p in model.parameters())}


def time_stage_a(params, iters: int) -> float:
    """Seconds per iteration of the profile's Stage A, timed like the rows."""
    from vqe.models.stage_a import StageA
    from vqe.train.stage_a import stage_a_phase

    cfg = params.stage_a.train
    torch.manual_seed(params.seed)
    model = StageA(**asdict(params.stage_a.model), scale=params.synth.scale).train()
    phase, _, _ = stage_a_phase(model, cfg, torch.device("cpu"))
    data = TrainPatches(Manifest.load(params.synth.out_dir), "train", model.n, cfg.patch, low_res=True, seed=0)
    return timed_steps(phase, data, cfg.batch, iters, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--rows", nargs="*", default=None, help="default: baselines.rows")
    ap.add_argument("--out", default="results/benchmarks/baseline_speed.json")
    ap.add_argument("--stage-a-s", type=float, default=None, help="Stage A's s/it from an earlier run (else timed)")
    args = ap.parse_args()
    params = load_params(args.params)
    a_s = time_stage_a(params, args.iters) if args.stage_a_s is None else args.stage_a_s
    stage_a = {"s_per_it": a_s, "iters": params.stage_a.train.iters, "seconds": a_s * params.stage_a.train.iters}
    print("stage_a", stage_a, flush=True)
    rows = {}
    for name in args.rows or params.baselines.rows:
        rows[name] = time_row(params, name, args.iters)
        rows[name]["iters_for_stage_a_seconds"] = round(rows[name]["it_per_s"] * stage_a["seconds"])
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in rows[name].items()}, flush=True)
    write_json(Path(args.out), {
        "stage_a": stage_a, "rows": rows,
        "threads": torch.get_num_threads(), "timed_iters": args.iters, "profile": params.profile_name,
        "host": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                 "load_average": os.getloadavg()},
        "note": "training steps only (no validation, checkpoints or data loading); Stage A timed the same way"})


if __name__ == "__main__":
    main()
