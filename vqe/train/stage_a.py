"""Phase 1 (§III-D): train Stage A alone with the pixel loss L1 + lambda * (1 - MS-SSIM) (eq. 5).

`train_stage_a(params)` builds the model from `params.stage_a`, trains it on random patches of the
training split with the shared loop, and exports the final weights (the EMA when enabled) to
`models/stage_a.pt`, with a summary (throughput, validation scores, what was used) as JSON.
Runs unchanged under `torchrun --nproc_per_node=N`. `stage_a_phase` is the phase alone (optimiser,
schedule, EMA, step), for training it on other data (`benchmarks/stage_a_upper_bound.py`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from vqe.config import Params, TrainParams
from vqe.data.dataset import TrainPatches
from vqe.losses import PixelLoss
from vqe.models.stage_a import StageA
from vqe.registry import TRAINED
from vqe.train.core.amp import amp_name, autocast_dtype, autocaster, grad_scaler
from vqe.train.core.loop import Phase, fit, optimise
from vqe.train.core.optim import adam, cosine
from vqe.train.core.optim import ema as make_ema
from vqe.train.core.session import session

log = logging.getLogger(__name__)


def stage_a_phase(model: StageA, cfg: TrainParams, device: torch.device, net: Optional[nn.Module] = None
                  ) -> tuple[Phase, nn.Module, Callable[[], dict[str, Any]]]:
    """Phase 1 of `model` on the shared loop: Adam, cosine schedule, the optional EMA and the step
    (L1 + lambda (1 - MS-SSIM), eq. 5); `net` is the model as run (a DDP wrapper under torchrun).

    Returns the `Phase` (without `validate`: the caller scores what it needs), the model to export
    (the EMA when `cfg.ema` > 0) and what a summary records about the step, once it has run (the
    loss used, precision, EMA).
    """
    net = net if net is not None else model
    opt = adam(model.param_groups(cfg.lr, cfg.offset_lr_mult), cfg)
    sched = cosine(opt, cfg.iters, cfg.lr_min)
    ema = make_ema(model, cfg.ema)
    loss_fn = PixelLoss(cfg.ssim_weight)
    dtype = autocast_dtype(device, cfg.amp)
    scaler = grad_scaler(dtype)
    autocast = autocaster(device, dtype)

    def step(batch: tuple[torch.Tensor, torch.Tensor], it: int) -> dict[str, float]:
        lq, gt = (t.to(device, non_blocking=True) for t in batch)
        with autocast():
            out = net(lq)
        loss = loss_fn(out.float(), gt)
        optimise(loss, opt, list(model.parameters()), cfg.grad_clip, scaler)
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        return {"loss": loss.item(), "lr": sched.get_last_lr()[0], "offset_mean": model.offset_mean()}

    modules = {"model": model, **({"ema": ema} if ema is not None else {})}
    phase = Phase("stage_a", modules, {"adam": opt}, {"cosine": sched}, step)
    final = ema.module if ema is not None else model
    return phase, final, lambda: {"loss": loss_fn.kind or "l1", "amp": amp_name(dtype), "ema": bool(cfg.ema)}


def train_stage_a(params: Params, *, model_path: str | Path = TRAINED["stage_a"].model,
                  run_dir: str | Path = "checkpoints/stage_a", live_dir: Optional[str | Path] = "results/train/stage_a",
                  summary_path: Optional[str | Path] = "results/train/stage_a.json",
                  progress: bool = True, validate: bool = True,
                  extra_scores: Optional[Callable[[nn.Module], dict[str, float]]] = None,
                  data_sha256: Optional[str] = None) -> dict[str, Any]:
    """Phase 1; exports the model (EMA weights when `ema` > 0). `validate=False` skips validation
    (the ablation study scores its runs itself); `extra_scores(model)` adds scores to every validation
    (the scaling study's test-span curve)."""
    cfg, mcfg = params.stage_a.train, params.stage_a.model
    with session(params, cfg.device, data_sha256) as run:
        torch.manual_seed(params.seed)  # identical initial weights on every rank
        model = StageA(**asdict(mcfg), scale=params.synth.scale).to(run.dist.device)
        phase, final, describe = stage_a_phase(model, cfg, run.dist.device, run.wrap(model))
        low_res = mcfg.mode == "sra"
        validator = run.validator(mcfg.n, low_res=low_res, frames=cfg.val_frames, enabled=validate)
        if validator is not None:
            phase.validate = lambda: {**validator(final), **(extra_scores(final) if extra_scores else {})}
        dataset = TrainPatches(run.manifest, "train", mcfg.n, cfg.patch, low_res=low_res, seed=params.seed,
                               rate_ids=cfg.rate_ids)
        summary = fit(phase, dataset, cfg, run_dir=Path(run_dir), seed=params.seed,
                      fp=run.fingerprint("stage_a", asdict(params.stage_a)), dist=run.dist,
                      live_dir=Path(live_dir) if live_dir else None, progress=progress)
        summary.update(parameters=sum(p.numel() for p in model.parameters()), **describe(),
                       dcn="torchvision" if run.dist.device.type == "cuda" else "torch (grid_sample)",
                       val_input=validator.input_scores if validator else {})
        return run.finish(final, summary, model_path, summary_path)
