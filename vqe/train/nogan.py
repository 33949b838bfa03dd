"""NoGAN (seed 003, after DeOldify): most of the training without the adversarial game, then a short one.

Each sub-phase runs on the shared loop with its own checkpoint folder, so a killed run resumes
inside whichever sub-phase it was in (finished sub-phases are restored, not re-run):

a. `pretrain`: the generator alone, L1 + perceptual (LPIPS itself, seed 003, or VGG) + the temporal
   term; no critic.
b. `critic_<c>`: the generator frozen (no gradients, eval mode); the critics (D_S, and D_T for
   clips) learn real vs restored with the relativistic loss until their smoothed accuracy stops
   rising (`critic_patience`), at most `critic_iters`.
c. `handoff_<c>`: the normal GAN game for `handoff_fraction` x `iters` iterations with DeOldify's
   adaptive switching (fastai's AdaptiveGANSwitcher): the critic trains until its loss is below
   `critic_thresh`, then the generator takes one step, then the critic again. Every
   `handoff_ckpt_every` iterations the generator is validated; the one with the lowest validation
   LPIPS is kept, not the last one.
d. b-c repeat `cycles` times, each cycle starting from the previous cycle's chosen generator.

The same schedule trains our two-stage generator (row `nogan`: Stage A from phase 1, frozen by
default, and an identity-initialised Stage B) and the fast MobileNetV3 restorer (row `nogan_fast`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from vqe.config import FastParams, NoGanParams, Params
from vqe.data.dataset import TrainPatches
from vqe.models.build import build_model
from vqe.models.parts.discriminator import build_discriminators
from vqe.registry import TRAINED
from vqe.train.core.amp import amp_name, autocast_dtype
from vqe.train.core.distributed import Dist
from vqe.train.core.loop import Phase, fit
from vqe.train.core.optim import adam, cosine
from vqe.train.core.optim import ema as make_ema
from vqe.train.core.session import Session, session
from vqe.train.core.validate import Validator
from vqe.train.gan import SEQ_FRAMES, Batch, GanObjective, GanUpdates, gan_step
from vqe.train.generator import generator_from_stage_a, generator_groups, load_stage_a
from vqe.util.atomic import atomic_path
from vqe.util.errors import VQEError
from vqe.util.fetch import sha256sum

log = logging.getLogger(__name__)


def plateau(extra: dict[str, Any], patience: int, min_delta: float, beta: float = 0.9) -> Callable[[dict, int], bool]:
    """Stop rule for critic pre-training: the EMA of the critic's accuracy has not risen by
    `min_delta` for `patience` iterations. Its state lives in `extra` (checkpointed with the phase)."""

    def stop(logs: dict[str, float], it: int) -> bool:
        acc = logs["acc"]
        extra["acc_ema"] = acc if "acc_ema" not in extra else beta * extra["acc_ema"] + (1 - beta) * acc
        if extra["acc_ema"] > extra.get("acc_best", -math.inf) + min_delta:
            extra["acc_best"], extra["acc_best_it"] = extra["acc_ema"], it
        return it - extra["acc_best_it"] >= patience

    return stop


def critic_step(update: Callable, dist: Dist) -> Callable:
    """Critic pre-training: critic updates only; logs the rank-averaged accuracy the plateau rule reads."""

    def step(batch: tuple[torch.Tensor, torch.Tensor], it: int) -> dict[str, float]:
        logs = update(batch)
        accs = [v for k, v in logs.items() if k.startswith("acc_")]
        return {**logs, "acc": dist.mean(sum(accs) / len(accs))}

    return step


def handoff_step(critic: Callable, updates: GanUpdates, g_opt: torch.optim.Optimizer, g_params: list[torch.Tensor],
                 thresh: float, dist: Dist, extra: dict[str, Any]) -> Callable:
    """DeOldify's adaptive switching: critic updates until its loss < `thresh`, then one generator step."""

    def step(batch: tuple[torch.Tensor, torch.Tensor], it: int) -> dict[str, float]:
        extra["it"] = it
        if extra.get("turn", "critic") == "critic":
            logs = critic(batch)
            if dist.mean(logs["loss_d"]) < thresh:  # the same decision on every rank
                extra["turn"] = "generator"
            return {**logs, "g_turn": 0.0}
        logs = updates.generator_update(updates.generate(batch), g_opt, g_params, 1.0)
        extra["turn"] = "critic"
        extra["g_updates"] = extra.get("g_updates", 0) + 1
        return {**logs, "g_turn": 1.0}

    return step


def keep_best(validator: Validator, model: nn.Module, extra: dict[str, Any], path: Path) -> Callable[[], dict]:
    """Validation of the hand-off: the generator with the lowest LPIPS so far is written to `path`."""

    def validate() -> dict[str, float]:
        scores = validator(model)
        if scores["lpips"] < extra.get("best_lpips", math.inf):
            with atomic_path(path) as tmp:
                torch.save(model.state_dict(), tmp)
            extra.update(best_lpips=scores["lpips"], best_it=extra["it"], best_val=scores)
        return scores

    return validate


class NoGan:
    """The schedule a-d for one generator: `run()` trains it in place, leaves the chosen hand-off
    checkpoint's weights in `gen` and returns the summary (wall time and result of every sub-phase)."""

    def __init__(self, gen: nn.Module, cfg: NoGanParams, params: Params, groups: list[dict], *, run: Session,
                 validator: Optional[Validator], run_dir: Path, live_dir: Optional[Path], config: tuple,
                 progress: bool) -> None:
        dist = run.dist
        self.gen, self.cfg, self.params, self.groups, self.session, self.dist = gen, cfg, params, groups, run, dist
        self.validator, self.run_dir, self.live_dir, self.config = validator, run_dir, live_dir, config
        self.progress = progress
        self.net = run.wrap(gen) if any(p.requires_grad for p in gen.parameters()) else gen
        self.discs = build_discriminators(**asdict(cfg.disc)).to(dist.device)
        run_discs = {k: run.wrap(d) for k, d in self.discs.items()}
        self.objective = GanObjective(cfg.loss, run_discs, gen.n, dist.device)
        self.dtype = autocast_dtype(dist.device, cfg.train.amp)
        # one pair of loss scalers for the whole schedule
        self.updates = GanUpdates(self.net, self.objective, dist.device, self.dtype, cfg.train.grad_clip)
        temporal = "temporal" in cfg.disc.kinds or (cfg.loss.temporal != "none" and cfg.loss.pp > 0)
        self.dataset = TrainPatches(run.manifest, "train", gen.n, cfg.train.patch, low_res=gen.scale > 1,
                                    seed=params.seed, rate_ids=cfg.train.rate_ids,
                                    frames_out=SEQ_FRAMES if temporal else 1)

    def _fit(self, phase: Phase, cfg, name: str) -> dict[str, Any]:
        live = self.live_dir / name if self.live_dir else None
        return fit(phase, self.dataset, cfg, run_dir=self.run_dir / name, seed=self.params.seed,
                   fp=self.session.fingerprint(name, *self.config), dist=self.dist, live_dir=live,
                   progress=self.progress)

    def _critic(self, d_opt: torch.optim.Optimizer) -> Callable[[Batch], dict[str, float]]:
        """One critic update on a batch: real vs the frozen generator's output (no gradient into it)."""
        return lambda batch: self.updates.discriminator_update(self.updates.generate(batch, frozen=True), d_opt)

    def _validate(self) -> Optional[Callable[[], dict]]:
        return (lambda: self.validator(self.gen)) if self.validator else None

    def pretrain(self) -> dict[str, Any]:
        """a. The generator alone: no critic, lambda_adv = 0 throughout. With an EMA, validation scores the
        averaged weights and the generator leaves pre-training with them."""
        cfg = self.cfg.train
        g_opt = adam(self.groups, cfg)
        scheds = {"g": cosine(g_opt, cfg.iters, cfg.lr_min)}
        g_params = [p for g in self.groups for p in g["params"]]
        # use_buffers: the fast restorer's MobileNetV3 has BatchNorm, whose running statistics must follow too
        ema = make_ema(self.gen, cfg.ema, buffers=True)
        step = gan_step(self.updates, g_opt, g_params, scheds, weight=lambda it: 0.0,  # w = 0: D is never called
                        ema=ema, model=self.gen)
        validate = (lambda: self.validator(ema.module)) if ema is not None and self.validator else self._validate()
        phase = Phase("pretrain", {"generator": self.gen, **({"ema": ema} if ema is not None else {})}, {"g": g_opt},
                      scheds, step, validate=validate)
        summary = self._fit(phase, cfg, "pretrain")
        if ema is not None:
            self.gen.load_state_dict(ema.module.state_dict())
        return summary

    def critic(self, cycle: int) -> dict[str, Any]:
        """b. The critics alone on the frozen generator, until their accuracy plateaus."""
        cfg = self.cfg.train
        self.gen.eval().requires_grad_(False)
        d_opt = adam(self.discs.parameters(), cfg, cfg.d_lr)
        extra: dict[str, Any] = {}
        step = critic_step(self._critic(d_opt), self.dist)
        phase = Phase(f"critic_{cycle}", {"discriminators": self.discs}, {"d": d_opt}, {}, step, extra=extra,
                      stop=plateau(extra, cfg.critic_patience, cfg.critic_min_delta))
        summary = self._fit(phase, replace(cfg, iters=cfg.critic_iters), phase.name)
        self.gen.train()
        for g in self.groups:
            for p in g["params"]:
                p.requires_grad_(True)
        summary.update(accuracy=extra.get("acc_ema"))
        return summary

    def handoff(self, cycle: int) -> dict[str, Any]:
        """c. The short adversarial game; the generator with the best validation LPIPS is kept."""
        cfg = self.cfg.train
        groups = [{**g, "lr": cfg.handoff_lr} for g in self.groups]
        g_params = [p for g in groups for p in g["params"]]
        g_opt = adam(groups, cfg)
        d_opt = adam(self.discs.parameters(), cfg, cfg.d_lr)
        name = f"handoff_{cycle}"
        best = self.run_dir / name / "best.pt"
        extra: dict[str, Any] = {}
        step = handoff_step(self._critic(d_opt), self.updates, g_opt, g_params, cfg.critic_thresh, self.dist, extra)
        validate = keep_best(self.validator, self.gen, extra, best) if self.validator else None
        phase = Phase(name, {"generator": self.gen, "discriminators": self.discs}, {"g": g_opt, "d": d_opt}, {},
                      step, validate=validate, extra=extra)
        every = cfg.handoff_ckpt_every
        summary = self._fit(phase, replace(cfg, iters=cfg.handoff_iters, val_every=every, ckpt_every=every,
                                           log_every=1), name)  # every turn logged: the losses' spread
        self.dist.barrier()
        if best.is_file():  # rank 0 wrote it; every rank continues from the chosen generator
            self.gen.load_state_dict(torch.load(best, map_location=self.dist.device, weights_only=True))
        summary.update({k: extra.get(k) for k in ("best_it", "best_lpips", "best_val")},
                       g_updates=extra.get("g_updates", 0))
        return summary

    def run(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"pretrain": self.pretrain()}
        for c in range(1, self.cfg.train.cycles + 1):
            summary[f"critic_{c}"] = self.critic(c)
            summary[f"handoff_{c}"] = self.handoff(c)
        phases = {k: v for k, v in summary.items() if isinstance(v, dict)}
        last = summary[f"handoff_{self.cfg.train.cycles}"]
        summary.update(
            seconds={k: v["seconds"] for k, v in phases.items()},
            adversarial_iterations=sum(v["iterations"] for k, v in phases.items() if k.startswith("handoff")),
            generator_updates_adversarial=sum(v["g_updates"] for k, v in phases.items() if k.startswith("handoff")),
            val_pretrain=summary["pretrain"]["val"], val=last["best_val"] or last["val"],
            **self.objective.describe(), amp=amp_name(self.dtype))
        return summary


def _schedule(name: str, gen: nn.Module, cfg: NoGanParams, params: Params, groups: list[dict], *, fp_extra: tuple,
              model_path: str | Path, run_dir: str | Path, live_dir: Optional[str | Path],
              summary_path: Optional[str | Path], progress: bool, run: Session,
              summary: dict[str, Any]) -> dict[str, Any]:
    """Run the schedule for `gen` and export the chosen generator with its summary."""
    validator = run.validator(gen.n, low_res=gen.scale > 1, frames=cfg.train.val_frames, consecutive=True)
    if validator:
        summary.update(val_input=validator.input_scores, val_start=validator(gen))
    schedule = NoGan(gen, cfg, params, groups, run=run, validator=validator, run_dir=Path(run_dir),
                     live_dir=Path(live_dir) if live_dir else None, config=(name, asdict(cfg), *fp_extra),
                     progress=progress)
    summary.update(schedule.run())
    summary.update(parameters=sum(p.numel() for p in gen.parameters()))
    return run.finish(gen, summary, model_path, summary_path)


def train_nogan(params: Params, *, stage_a_path: str | Path = "models/stage_a.pt",
                model_path: str | Path = TRAINED["nogan"].model, run_dir: str | Path = "checkpoints/nogan",
                live_dir: Optional[str | Path] = "results/train/nogan",
                summary_path: Optional[str | Path] = "results/train/nogan.json", progress: bool = True,
                data_sha256: Optional[str] = None) -> dict[str, Any]:
    """Row `nogan`: our generator G = G_B(G_A(.)) (sizes from `stage_b.model`) trained by NoGAN."""
    cfg = params.nogan
    with session(params, cfg.train.device, data_sha256) as run:
        dist = run.dist
        stage_a = load_stage_a(stage_a_path)
        if not params.stage_b.model.enabled and cfg.train.stage_a_lr == 0:
            raise VQEError("nogan: stage_b.model.enabled is false and nogan.train.stage_a_lr is 0: nothing to train")
        torch.manual_seed(params.seed)
        gen = generator_from_stage_a(stage_a, asdict(params.stage_b.model)).to(dist.device)
        groups = generator_groups(gen, cfg.train.stage_a_lr, cfg.train.lr, params.stage_a.train.offset_lr_mult)
        return _schedule("nogan", gen, cfg, params, groups, fp_extra=(asdict(params.stage_b.model),
                         sha256sum(Path(stage_a_path))), model_path=model_path, run_dir=run_dir, live_dir=live_dir,
                         summary_path=summary_path, progress=progress, run=run,
                         summary={"stage_a_trained": cfg.train.stage_a_lr > 0})


def train_nogan_fast(params: Params, *, model_path: str | Path = TRAINED["nogan_fast"].model,
                     run_dir: str | Path = "checkpoints/nogan_fast",
                     live_dir: Optional[str | Path] = "results/train/nogan_fast",
                     summary_path: Optional[str | Path] = "results/train/nogan_fast.json",
                     progress: bool = True,
                     data_sha256: Optional[str] = None) -> dict[str, Any]:
    """Row `nogan_fast`: seed 003's MobileNetV3 U-Net, single frame, trained by NoGAN from scratch
    (or from ImageNet encoder weights when they are on disk; the summary records which)."""
    cfg: FastParams = params.nogan_fast
    with session(params, cfg.train.device, data_sha256) as run:
        dist = run.dist
        scale = params.synth.scale if params.stage_a.model.mode == "sra" else 1
        torch.manual_seed(params.seed)
        gen = build_model("fast", asdict(cfg.model), scale=scale)  # by name: this trainer imports no model file
        encoder_weights = gen.load_encoder_weights()
        gen = gen.to(dist.device)
        groups = [{"params": list(gen.parameters()), "lr": cfg.train.lr}]
        return _schedule("nogan_fast", gen, cfg, params, groups, fp_extra=(encoder_weights,), model_path=model_path,
                         run_dir=run_dir, live_dir=live_dir, summary_path=summary_path, progress=progress, run=run,
                         summary={"encoder": cfg.model.encoder, "encoder_weights": encoder_weights})
