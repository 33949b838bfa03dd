"""Table 1's learned baselines, trained by one recipe on the shared loop and our data.

Every baseline (`baselines.systems.<row id>`: Galteri et al., SUPERVEGAN, EDVR, ESRGAN+DnCNN, ...) is a
model of `vqe.registry.BASELINE_ARCHS` trained on the same patches, degradation and validation as our
own models, with the loss its paper gives, from the terms of one objective:

    pixel_weight * pixel(out, gt) + perceptual_weight * perceptual(out, gt)
    + adv_weight * adversarial(out) + aux_weight * aux

The first `train.warmup` iterations are a pixel-loss pre-training at `warmup_pixel_weight` (ESRGAN's
PSNR-oriented model); the perceptual and adversarial terms (and the discriminator's updates) start after
it. `aux` is
a model's own term (`aux_loss`: ESRGAN+DnCNN's denoiser at the decoded size). A model may also own how
it is trained over time: SUPERVEGAN's three-phase progressive schedule blends its Stage B in
(`SuperVEGAN.training_view`), and in its first phase only its Stage A's MSE applies. Each game (`vqe.registry.GAMES`)
uses its paper's discriminator and loss. Budgets are iterations sized so that each row trains about as
long as Stage A does on the same profile (the summary records the seconds).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqe.config import BaselineLoss, BaselineSystem, BaselineTrain, Params
from vqe.data.dataset import TrainPatches
from vqe.losses import perceptual_loss
from vqe.models.build import build_model
from vqe.models.parts.objective import Adversary, View, down_to
from vqe.registry import BASELINE
from vqe.train.core.amp import amp_name, autocast_dtype, autocaster, grad_scaler
from vqe.train.core.loop import Phase, fit, optimise
from vqe.train.core.optim import adam, cosine
from vqe.train.core.optim import ema as make_ema
from vqe.train.core.session import session
from vqe.train.gan import adversary
from vqe.util.errors import VQEError
from vqe.util.upscale import bicubic_up

log = logging.getLogger(__name__)


# --- what the objective scores ------------------------------------------------------------------


def plain_view(model: nn.Module, lq: Tensor, gt: Tensor, it: int, iters: int, side: Optional[Tensor]) -> View:
    """Most baselines: the output, plus `model.aux_loss(gt at the decoded size)` when the model has one
    (`side`: the windows' side information, for the models that read it)."""
    out = model(lq) if side is None else model(lq, side)
    aux = model.aux_loss(down_to(gt, lq.shape)) if hasattr(model, "aux_loss") else None
    return View(out, aux, True, {})


# --- adversarial games --------------------------------------------------------------------------


PIXEL = {"l1": F.l1_loss, "mse": F.mse_loss}


# --- the phase ----------------------------------------------------------------------------------

def baseline_phase(name: str, system: BaselineSystem, model: nn.Module, cfg: BaselineTrain, device: torch.device
                   ) -> tuple[Phase, nn.Module, Optional[torch.dtype]]:
    """The row's phase on the shared loop (Adam + cosine for the model, Adam for its discriminator), the
    module to export (the EMA when `cfg.ema` > 0) and the autocast dtype (CUDA with `cfg.amp` only)."""
    loss = system.loss
    opt = adam(_param_groups(model, cfg.lr), cfg)
    sched = cosine(opt, cfg.iters, cfg.lr_min)
    ema = make_ema(model, cfg.ema)
    perc = (perceptual_loss(loss.perceptual, key=f"baselines.systems.{name}.loss.perceptual").to(device)
            if loss.perceptual != "none" and loss.perceptual_weight > 0 else None)
    adv = adversary(loss.adversarial, system.disc, cfg.patch) if loss.adversarial != "none" else None
    modules: dict[str, nn.Module] = {"model": model}
    optimizers: dict[str, torch.optim.Optimizer] = {"adam": opt}
    if adv is not None:
        adv.disc.to(device)
        modules["disc"] = adv.disc
        optimizers["d_adam"] = adam(adv.disc.parameters(), cfg, cfg.d_lr)
    if ema is not None:
        modules["ema"] = ema
    view_of = getattr(type(model), "training_view", plain_view)  # SUPERVEGAN's and TecoGAN's own
    params = list(model.parameters())
    dtype = autocast_dtype(device, cfg.amp)
    autocast, scalers = autocaster(device, dtype), {k: grad_scaler(dtype) for k in optimizers}

    def step(batch: tuple[Tensor, Tensor], it: int) -> dict[str, float]:
        lq, gt, *side = (t.to(device, non_blocking=True) for t in batch)
        with autocast():
            view = view_of(model, lq, gt, it, cfg.iters, side[0] if side else None)
        view = view._replace(out=view.out.float(), aux=None if view.aux is None else view.aux.float(),
                             target=gt if view.target is None else view.target)
        late = view.main and it > cfg.warmup  # the perceptual and adversarial terms apply
        adversarial = adv is not None and late
        logs = dict(view.logs)
        cond = None
        if adversarial:  # the discriminator first, on a detached output
            cond = view.cond if view.cond is not None else bicubic_up(lq[:, model.n], model.scale)
            with autocast():
                d_loss = adv.d_loss(adv.disc, view.target, view.out.detach(), cond).float()
            optimise(d_loss, optimizers["d_adam"], list(adv.disc.parameters()), cfg.grad_clip, scalers["d_adam"])
            logs["loss_d"] = d_loss.item()
        with autocast():  # the perceptual networks run float32 inside
            terms = objective_terms(view, view.target, loss, perc if late else None, adv if adversarial else None, cond,
                                    pixel_weight=loss.pixel_weight if late else loss.warmup_pixel_weight,
                                    aux_weight=loss.aux_weight if late or loss.warmup_aux_weight is None
                                    else loss.warmup_aux_weight)
        total = sum((t.float() for t in terms.values()), torch.zeros((), device=device))
        optimise(total, opt, params, cfg.grad_clip, scalers["adam"])
        if adv is not None:
            adv.disc.requires_grad_(True)
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        return {"loss": total.item(), **{f"loss_{k}": v.item() for k, v in terms.items()}, **logs,
                "lr": sched.get_last_lr()[0]}

    phase = Phase(name, modules, optimizers, {"cosine": sched}, step)
    return phase, (ema.module if ema is not None else model), dtype


def objective_terms(view: View, gt: Tensor, loss: BaselineLoss, perc: Optional[nn.Module], adv: Optional[Adversary],
                    cond: Any, pixel_weight: Optional[float] = None, aux_weight: Optional[float] = None
                    ) -> dict[str, Tensor]:
    """The weighted terms of the row's loss for one batch (those that apply at this iteration); `cond` is
    the adversary's condition; `pixel_weight` and `aux_weight` override the loss's (the warm-up's)."""
    terms: dict[str, Tensor] = {}
    pixel_weight = loss.pixel_weight if pixel_weight is None else pixel_weight
    aux_weight = loss.aux_weight if aux_weight is None else aux_weight
    if view.main:
        if pixel_weight > 0:
            terms["pixel"] = pixel_weight * PIXEL[loss.pixel](view.out, gt)
        if perc is not None:
            terms["perceptual"] = loss.perceptual_weight * perc(view.out, gt)
        if adv is not None:
            adv.disc.requires_grad_(False)  # G's update must not accumulate gradients in D
            terms["adv"] = loss.adv_weight * adv.g_loss(adv.disc, gt, view.out, cond)
    if view.aux is not None and aux_weight > 0:
        terms["aux"] = aux_weight * view.aux
    temporal = view.temporal or {}
    for key, weight in (("pingpong", loss.pingpong_weight), ("warp", loss.warp_weight)):
        if key in temporal and weight > 0:
            terms[key] = weight * temporal[key]
    if not terms:
        raise VQEError("baseline objective: no term applies (every weight is 0)")
    return terms


def _param_groups(model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """EDVR's offset convs learn slower (its `param_groups`); every other model has one group."""
    if hasattr(model, "param_groups"):
        return model.param_groups(lr, getattr(model, "offset_lr_mult", 0.25))
    return [{"params": list(model.parameters()), "lr": lr}]


# --- the row ------------------------------------------------------------------------------------

def build_baseline(params: Params, name: str) -> nn.Module:
    """The untrained model of row `name` at the data's scale."""
    params.baselines.train_for(name)  # a VQEError naming the key for an unknown row
    system = params.baselines.systems[name]
    return build_model(system.arch, dict(system.model), scale=params.synth.scale)


def train_baseline(params: Params, name: str, *, model_path: str | Path = BASELINE.model,
                   run_dir: str | Path = "checkpoints/{name}", live_dir: Optional[str | Path] = "results/train/{name}",
                   summary_path: Optional[str | Path] = "results/train/{name}.json", progress: bool = True,
                   data_sha256: Optional[str] = None) -> dict[str, Any]:
    """Train row `name` and export its model (with its summary as metadata and as JSON); resumes from
    `run_dir/last.pt`. "{name}" in a path is the row id; `live_dir` / `summary_path` None: no dvclive log / JSON."""
    path = lambda p: Path(str(p).format(name=name)) if p is not None else None  # noqa: E731
    return _train_row(params, name, params.baselines.train_for(name), path(model_path), path(run_dir),
                      path(live_dir), path(summary_path), progress, data_sha256)


def _train_row(params: Params, name: str, cfg: BaselineTrain, model_path: Path, run_dir: Path,
               live_dir: Optional[Path], summary_path: Optional[Path], progress: bool,
               data_sha256: Optional[str]) -> dict[str, Any]:
    system = params.baselines.systems[name]
    with session(params, cfg.device, data_sha256) as run:
        if run.dist.world > 1:
            raise VQEError("baselines train in one process (their discriminators are not wrapped for DDP)")
        torch.manual_seed(params.seed)
        model = build_baseline(params, name).to(run.dist.device).train()
        phase, final, dtype = baseline_phase(name, system, model, cfg, run.dist.device)
        validator = run.validator(model.n, low_res=True, frames=cfg.val_frames)
        phase.validate = lambda: validator(final)
        side, side_record = (model.training_side(run.manifest, params.seed) if getattr(model, "needs_side", False)
                             else (None, {}))
        dataset = TrainPatches(run.manifest, "train", model.n, cfg.patch, low_res=True, seed=params.seed,
                               rate_ids=cfg.rate_ids, frames_out=cfg.frames, side=side)
        summary = fit(phase, dataset, cfg, run_dir=run_dir, seed=params.seed,
                      fp=run.fingerprint("baseline", name, asdict(system), asdict(cfg)), dist=run.dist,
                      live_dir=live_dir, progress=progress)
        summary.update(row=name, arch=system.arch, parameters=sum(p.numel() for p in model.parameters()),
                       loss=asdict(system.loss), perceptual_net=_perceptual_record(system.loss.perceptual),
                       ema=bool(cfg.ema), amp=amp_name(dtype), val_input=validator.input_scores, **side_record)
        return run.finish(final, summary, model_path, summary_path)


def _perceptual_record(net: str) -> str:
    """What the perceptual term ran on, with the substitution said (the papers' VGG-19 has no offline source)."""
    if net == "vgg16_conv5_3":
        return "VGG-16 conv5_3 (the papers name VGG-19 conv5_3 / conv5_4, whose weights have no offline source)"
    return net
