"""The shared training loop (nanoGPT-style: plain, iteration based), used by every phase.

A `Phase` says what is trained: its modules, optimisers, schedulers, a `step` that does one update
on a batch and returns scalar logs, an optional `validate` and an optional early `stop` rule. `fit`
owns everything else: deterministic batches, resume from the last checkpoint, DDP rank handling,
NaN/Inf guard, dvclive logging (validation scores with the wall-clock seconds so far), periodic
validation and checkpoints, and the progress bar.

Determinism: batch k is a pure function of (seed, k) — a seeded permutation per epoch picks the
samples, and the dataset derives each sample's random crop from its index — so a resumed run sees
exactly the batches an uninterrupted one would, and a DDP run splits the same global batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from dvclive import Live
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from vqe.config import TrainParams
from vqe.models.build import save_model
from vqe.train.core import checkpoint
from vqe.train.core.distributed import Dist
from vqe.util.atomic import write_json
from vqe.util.errors import VQEError

log = logging.getLogger(__name__)


class IterationBatches(Sampler[list[int]]):
    """Batches for iterations start+1..iters; this rank's share of each global batch.

    Sample numbers g = k*batch + j run through a seeded permutation per epoch of `size` items; the
    yielded index is epoch*size + perm[g % size], so every epoch sees every item once and the
    dataset (which draws crops from the index) gets fresh crops each epoch.
    """

    def __init__(self, size: int, batch: int, start: int, iters: int, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        if batch % world:
            raise VQEError(f"batch {batch} is not divisible by the number of processes {world}")
        self.size, self.batch, self.start, self.iters, self.seed = size, batch, start, iters, seed
        self.local = batch // world
        self.offset = rank * self.local
        self._perm: dict[int, np.ndarray] = {}

    def _index(self, g: int) -> int:
        epoch, j = divmod(g, self.size)
        if epoch not in self._perm:
            self._perm = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.size)}
        return epoch * self.size + int(self._perm[epoch][j])

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start, self.iters):
            first = k * self.batch + self.offset
            yield [self._index(g) for g in range(first, first + self.local)]

    def __len__(self) -> int:
        return self.iters - self.start


@dataclass
class Phase:
    name: str
    modules: dict[str, nn.Module]  # checkpointed state (plain modules, not DDP wrappers)
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    step: Callable[[Any, int], dict[str, float]]
    validate: Optional[Callable[[], dict[str, float]]] = None  # run on rank 0 only
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able state carried across resumes
    # early stop after iteration `it` given its logs (e.g. a plateau; keep its state in `extra`, and
    # decide the same on every rank); the phase then ends there, checkpointed, and stays ended on resume
    stop: Optional[Callable[[dict[str, float], int], bool]] = None


def optimise(loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
             grad_clip: float = 0.0, scaler: Optional[torch.amp.GradScaler] = None) -> float:
    """Backward, optional gradient-norm clipping, optimiser step; returns the gradient norm (or NaN)."""
    optimizer.zero_grad(set_to_none=True)
    scaler = scaler or _NO_SCALER
    scaler.scale(loss).backward()
    norm = float("nan")
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    scaler.step(optimizer)
    scaler.update()
    return norm


_NO_SCALER = torch.amp.GradScaler("cpu", enabled=False)


def fit(phase: Phase, dataset: Dataset, cfg: TrainParams, *, run_dir: Path, seed: int, fp: str, dist: Dist,
        live_dir: Optional[Path] = None, progress: bool = True) -> dict[str, Any]:
    """Train `phase` to `cfg.iters` iterations, resuming from `run_dir/last.pt` when it matches `fp`."""
    ckpt_path = Path(run_dir) / "last.pt"
    start, seconds, val = 0, 0.0, {}
    state = checkpoint.load(ckpt_path, fp)
    if state is not None:
        start, seconds, val = state["iteration"], state["seconds"], state.get("val", {})
        _restore(phase, state)
        log.info("%s: resuming from %s at iteration %d", phase.name, ckpt_path, start)
    elif ckpt_path.exists():
        log.warning("%s: ignoring %s (it belongs to another configuration)", phase.name, ckpt_path)
    end = start if phase.extra.get("stopped_at") else cfg.iters
    sampler = IterationBatches(len(dataset), cfg.batch, start, end, seed, dist.rank, dist.world)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers,
                        pin_memory=dist.device.type == "cuda", persistent_workers=False)
    live = _open_live(live_dir, start) if dist.main and live_dir else None
    bar = tqdm(total=cfg.iters, initial=start, desc=phase.name, unit="it", disable=not (progress and dist.main),
               dynamic_ncols=True)
    window: dict[str, list[float]] = {}
    t0, done = time.perf_counter(), start
    try:
        for it, batch in enumerate(loader, start + 1):
            logs = phase.step(batch, it)
            _check_finite(phase.name, logs, it, ckpt_path)
            for k, v in logs.items():
                window.setdefault(k, []).append(v)
            done = it
            bar.update(1)
            stop = phase.stop is not None and phase.stop(logs, it)
            if stop:
                phase.extra["stopped_at"] = it
                log.info("%s: stopped early at iteration %d", phase.name, it)
            last = stop or it == cfg.iters
            if it % cfg.log_every == 0 or last:
                means = {k: float(np.nanmean(v)) for k, v in window.items()}
                window.clear()
                bar.set_postfix({k: f"{v:.4g}" for k, v in means.items() if k.startswith("loss")})
                if live:
                    _log(live, it, {f"train/{k}": v for k, v in means.items()})
            if it % cfg.val_every == 0 or last:  # every rank reaches the barrier
                if dist.main and phase.validate:
                    val = phase.validate()
                    if live:
                        elapsed = seconds + time.perf_counter() - t0
                        _log(live, it, {**{f"val/{k}": v for k, v in val.items()}, "val/seconds": elapsed})
                dist.barrier()
            if it % cfg.ckpt_every == 0 or last:
                elapsed = seconds + time.perf_counter() - t0
                if dist.main:
                    _save(phase, ckpt_path, it, elapsed, val, fp)
                    if live:
                        live.make_summary()
                dist.barrier()
            if stop:
                break
    finally:
        bar.close()
        if live:
            live.end()
    run_seconds = time.perf_counter() - t0
    ran = done - start
    return {"iterations": done, "resumed_from": start, "seconds": seconds + run_seconds,
            "stopped_early": bool(phase.extra.get("stopped_at")),
            "it_per_s": ran / run_seconds if ran else float("nan"),
            "patches_per_s": ran * cfg.batch / run_seconds if ran else float("nan"), "val": val}


def export(model_path: str | Path, model: nn.Module, summary: dict[str, Any], summary_path: Optional[str | Path],
           profile: str) -> None:
    """Write the trained model (with the run's summary as its metadata) and the summary JSON (DVC metrics)."""

    save_model(model_path, model, meta={"profile": profile, "train": summary})
    if summary_path:
        write_json(Path(summary_path), summary)


def _check_finite(name: str, logs: dict[str, float], it: int, ckpt_path: Path) -> None:
    bad = {k: v for k, v in logs.items() if k.startswith("loss") and not math.isfinite(v)}
    if bad:
        raise VQEError(f"{name}: non-finite loss {bad} at iteration {it}; stopped. The last good "
                       f"checkpoint {ckpt_path} is kept (lower the learning rate or enable grad_clip)")


def _save(phase: Phase, path: Path, it: int, seconds: float, val: dict, fp: str) -> None:
    checkpoint.save(path, {
        "iteration": it, "seconds": seconds, "val": val, "fingerprint": fp, "extra": phase.extra,
        "modules": {k: m.state_dict() for k, m in phase.modules.items()},
        "optimizers": {k: o.state_dict() for k, o in phase.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in phase.schedulers.items()},
        "rng": checkpoint.rng_state(),
    })


def _restore(phase: Phase, state: dict[str, Any]) -> None:
    for group in ("modules", "optimizers", "schedulers"):
        for k, obj in getattr(phase, group).items():
            obj.load_state_dict(state[group][k])
    phase.extra.update(state.get("extra", {}))
    checkpoint.set_rng_state(state["rng"])


def _open_live(live_dir: Path, start: int):
    """dvclive logger; on resume, drop rows logged after the checkpoint (they will be logged again)."""

    if start > 0:
        for tsv in Path(live_dir, "plots", "metrics").rglob("*.tsv"):
            lines = tsv.read_text().splitlines()
            keep = [lines[0]] + [ln for ln in lines[1:] if int(ln.split("\t")[0]) <= start]
            tsv.write_text("\n".join(keep) + "\n")
    return Live(str(live_dir), resume=start > 0, report=None, save_dvc_exp=False, dvcyaml=None)


def _log(live, it: int, values: dict[str, float]) -> None:
    live.step = it
    for k, v in values.items():
        live.log_metric(k, v, timestamp=False)
