"""Phase 2 (§III-C/D): Stage B trained adversarially on top of the trained Stage A.

The generator G = G_B(G_A(.)) starts from `models/stage_a.pt` and an identity Stage B. Each sample is
a short clip (3 frames and the 2N+3 LQ frames their windows need). Generator loss, eq. 11:

    lambda_pix L1 + lambda_perc L_perc(VGG) + lambda_pp L_pp + w(it) lambda_adv (L_adv,S + L_adv,T)

with w = 0 for `warmup` iterations, then a linear ramp to 1 (the paper's gradual introduction of the
GAN). The discriminators (spatial PatchGAN on frames, temporal on 3 stacked frames) take `d_steps`
relativistic-average updates per generator update once w > 0. Stage A is frozen unless
`stage_a_lr > 0`; an optional joint A+B fine-tune at `finetune_lr` follows. The objective and the
D and G updates are `vqe.train.gan`'s (shared with NoGAN); resume, NaN guard, dvclive, DDP and AMP
come from the shared loop.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from vqe.config import GanTrainParams, Params
from vqe.data.dataset import TrainPatches
from vqe.models.parts.discriminator import build_discriminators
from vqe.models.stage_b import Generator
from vqe.registry import TRAINED
from vqe.train.core.amp import amp_name, autocast_dtype
from vqe.train.core.loop import Phase, fit
from vqe.train.core.optim import adam, cosine
from vqe.train.core.optim import ema as make_ema
from vqe.train.core.session import Session, session
from vqe.train.core.validate import Validator
from vqe.train.gan import SEQ_FRAMES, GanObjective, GanUpdates, gan_step
from vqe.train.generator import generator_groups, load_stage_a
from vqe.util.fetch import sha256sum

log = logging.getLogger(__name__)


def adv_weight(it: int, warmup: int, ramp: int) -> float:
    """The factor on lambda_adv at iteration `it` (1-based): 0 in the warm-up, then linear to 1."""
    if it <= warmup:
        return 0.0
    return 1.0 if ramp == 0 else min(1.0, (it - warmup) / ramp)


def train_stage_b(params: Params, *, stage_a_path: str | Path = "models/stage_a.pt",
                  model_path: str | Path = TRAINED["stage_b"].model, run_dir: str | Path = "checkpoints/stage_b",
                  live_dir: Optional[str | Path] = "results/train/stage_b",
                  summary_path: Optional[str | Path] = "results/train/stage_b.json",
                  progress: bool = True, validate: bool = True,
                  data_sha256: Optional[str] = None) -> dict[str, Any]:
    """Phase 2 (and the optional joint fine-tune); exports the full generator to `model_path`.
    `validate=False` skips validation (the ablation study scores its runs itself)."""
    sb, cfg = params.stage_b, params.stage_b.train
    with session(params, cfg.device, data_sha256) as run:
        stage_a = load_stage_a(stage_a_path)
        torch.manual_seed(params.seed)
        gen = Generator.from_stage_a(stage_a, asdict(sb.model)).to(run.dist.device)
        validator = run.validator(gen.n, low_res=stage_a.scale > 1, frames=cfg.val_frames, consecutive=True,
                                  enabled=validate)
        summary: dict[str, Any] = {"val_input": validator.input_scores if validator else {},
                                   "val_stage_a": validator(gen.stage_a) if validator else {}}
        config = (asdict(sb), sha256sum(Path(stage_a_path)))
        discs = build_discriminators(**asdict(sb.disc)).to(run.dist.device) if sb.loss.adv > 0 else nn.ModuleDict()
        # the joint fine-tune continues with the phase-2 discriminators
        common = dict(run=run, validator=validator, progress=progress, config=config, discs=discs)
        if gen.stage_b is None and cfg.stage_a_lr == 0:
            log.info("stage_b.model.enabled is false and Stage A is frozen: the generator is Stage A itself")
            summary.update(iterations=0, note="no Stage B and Stage A frozen: nothing to train")
            final = gen
        else:
            final, phase_summary = _run_phase(
                "stage_b", gen, params, cfg, a_lr=cfg.stage_a_lr, b_lr=cfg.lr,
                weight=lambda it: adv_weight(it, cfg.warmup, cfg.ramp), run_dir=Path(run_dir),
                live_dir=Path(live_dir) if live_dir else None, **common)
            summary.update(phase_summary)
        if cfg.finetune_iters > 0:
            joint = replace(cfg, iters=cfg.finetune_iters, ema=0.0, warmup=0, ramp=0)
            gen.load_state_dict(final.state_dict())
            final, summary["joint"] = _run_phase(
                "joint", gen, params, joint, a_lr=cfg.finetune_lr, b_lr=cfg.finetune_lr,
                weight=lambda it: 1.0, run_dir=Path(run_dir) / "joint",
                live_dir=Path(f"{live_dir}_joint") if live_dir else None, **common)
        summary.update(parameters_stage_b=sum(p.numel() for p in gen.stage_b.parameters()) if gen.stage_b else 0)
        return run.finish(final, summary, model_path, summary_path)


def _run_phase(name: str, gen: Generator, params: Params, cfg: GanTrainParams, *, a_lr: float, b_lr: float,
               weight: Callable[[int], float], run_dir: Path, live_dir: Optional[Path], run: Session,
               validator: Optional[Validator], progress: bool, config: tuple, discs: nn.ModuleDict
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Build optimisers, discriminators and the step for one GAN phase and run it on the shared loop."""
    sb, dist = params.stage_b, run.dist
    groups = generator_groups(gen, a_lr, b_lr, params.stage_a.train.offset_lr_mult)
    g_params = [p for g in groups for p in g["params"]]
    g_opt = adam(groups, cfg)
    d_opt = adam(discs.parameters(), cfg, cfg.d_lr) if len(discs) else None
    scheds = {"g": cosine(g_opt, cfg.iters, cfg.lr_min)}
    if d_opt is not None:
        scheds["d"] = cosine(d_opt, max(1, cfg.iters - cfg.warmup), cfg.lr_min)
    net = run.wrap(gen)
    run_discs = {k: run.wrap(d) for k, d in discs.items()}
    objective = GanObjective(sb.loss, run_discs, gen.n, dist.device)
    dtype = autocast_dtype(dist.device, cfg.amp)
    updates = GanUpdates(net, objective, dist.device, dtype, cfg.grad_clip)
    ema = make_ema(gen, cfg.ema)
    final = ema.module if ema is not None else gen
    step = gan_step(updates, g_opt, g_params, scheds, weight, d_opt=d_opt, d_steps=cfg.d_steps, ema=ema, model=gen)
    modules = {"generator": gen, "discriminators": discs, **({"ema": ema} if ema is not None else {})}
    optimizers = {"g": g_opt, **({"d": d_opt} if d_opt else {})}
    phase = Phase(name, modules, optimizers, scheds, step, validate=(lambda: validator(final)) if validator else None)
    dataset = TrainPatches(run.manifest, "train", gen.n, cfg.patch, low_res=gen.scale > 1, seed=params.seed,
                           rate_ids=cfg.rate_ids, frames_out=SEQ_FRAMES)
    summary = fit(phase, dataset, cfg, run_dir=run_dir, seed=params.seed, fp=run.fingerprint(name, *config),
                  dist=dist, live_dir=live_dir, progress=progress)
    summary.update(objective.describe(), stage_a_trained=a_lr > 0, amp=amp_name(dtype))
    return final, summary

