"""Phase 2 (§III-C/D): Stage B trained adversarially on top of the trained Stage A.

The generator G = G_B(G_A(.)) starts from `models/stage_a.pt` and an identity Stage B. Each sample is
a short clip (3 frames and the 2N+3 LQ frames their windows need). Generator loss, eq. 11:

    lambda_pix L1 + lambda_perc L_perc(VGG) + lambda_pp L_pp + w(it) lambda_adv (L_adv,S + L_adv,T)

with w = 0 for `warmup` iterations, then a linear ramp to 1 (the paper's gradual introduction of the
GAN). The discriminators (spatial PatchGAN on frames, temporal on 3 stacked frames) take `d_steps`
relativistic-average updates per generator update once w > 0. Stage A is frozen unless
`stage_a_lr > 0`; an optional joint A+B fine-tune at `finetune_lr` follows. Resume, NaN guard,
dvclive, DDP and AMP come from the shared loop.

DDP note: every module runs exactly one forward per backward (real and fake go through a
discriminator as one batch; the reversed ping-pong windows ride in the generator's batch).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vqe.config import GanLoss, GanTrainParams, Params
from vqe.data.dataset import TrainPatches
from vqe.errors import VQEError
from vqe.data.manifest import Manifest
from vqe.fetch import sha256sum
from vqe.losses import flow_temporal_loss, input_flows, perceptual_loss, ping_pong_loss, relativistic_loss
from vqe.models import load_model
from vqe.models.discriminator import build_discriminators, stack_frames
from vqe.models.generator import Generator, from_stage_a, sequence_windows
from vqe.models.stage_a import bicubic_up
from vqe.train import checkpoint, distributed
from vqe.train.loop import Phase, cosine, export, fit, optimise
from vqe.train.stage_a import amp_name, autocast_dtype, autocaster, validation_kbps
from vqe.train.validate import Validator

log = logging.getLogger(__name__)
SEQ_FRAMES = 3  # frames per training sample: D_T judges 3 consecutive frames (§III-C)


def adv_weight(it: int, warmup: int, ramp: int) -> float:
    """The factor on lambda_adv at iteration `it` (1-based): 0 in the warm-up, then linear to 1."""
    if it <= warmup:
        return 0.0
    return 1.0 if ramp == 0 else min(1.0, (it - warmup) / ramp)


def critic_accuracy(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Relativistic accuracy: the share of real logits above the mean fake one and of fake logits below
    the mean real one (0.5 = cannot tell them apart)."""
    return 0.5 * float((real > fake.mean()).float().mean() + (fake < real.mean()).float().mean())


class GanObjective:
    """Eq. 7-11 on one batch: `generator_losses` and `discriminator_loss`, with their logged parts."""

    def __init__(self, cfg: GanLoss, discs: dict[str, nn.Module], n: int, device: torch.device) -> None:
        self.cfg, self.discs, self.n = cfg, discs, n
        self.pingpong = cfg.temporal == "pingpong" and cfg.pp > 0  # the generator runs reversed windows too
        self.perceptual = perceptual_loss(cfg.perceptual_net).to(device) if cfg.perc > 0 else None

    def _logits(self, kind: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward of D on [real; fake] (one forward per backward keeps DDP happy)."""
        if kind == "temporal":
            real, fake = stack_frames(real), stack_frames(fake)
        else:
            real, fake = real.flatten(0, 1), fake.flatten(0, 1)
        logits = self.discs[kind](torch.cat([real, fake])).float()
        return logits[:len(real)], logits[len(real):]

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        total, logs = real.new_zeros(()), {}
        for kind in self.discs:
            lr, lf = self._logits(kind, real, fake.detach())
            loss = relativistic_loss(lr, lf)
            total = total + loss
            tag = kind[0]  # s | t
            logs[f"loss_d_{tag}"] = loss.item()
            logs[f"d_real_{tag}"] = torch.sigmoid(lr - lf.mean()).mean().item()  # P(real looks more real)
            logs[f"d_fake_{tag}"] = torch.sigmoid(lf - lr.mean()).mean().item()
            logs[f"acc_{tag}"] = critic_accuracy(lr, lf)
        logs["loss_d"] = total.item()
        return total, logs

    def generator_losses(self, lq: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                         reversed_centre: Optional[torch.Tensor], w_adv: float) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, parts = self.cfg, {}
        parts["pix"] = (fake - real).abs().mean()
        if self.perceptual is not None:
            parts["perc"] = self.perceptual(fake.flatten(0, 1), real.flatten(0, 1))
        if cfg.temporal == "pingpong" and reversed_centre is not None:
            parts["pp"] = ping_pong_loss(fake[:, fake.shape[1] // 2], reversed_centre)
        elif cfg.temporal == "flow":
            parts["pp"] = flow_temporal_loss(fake, input_flows(self._input_frames(lq, fake.shape[-2:])))
        weights = {"pix": cfg.pix, "perc": cfg.perc, "pp": cfg.pp}
        total = sum(weights[k] * v for k, v in parts.items())
        if w_adv > 0 and self.discs:
            adv = sum(relativistic_loss(*reversed(self._logits(kind, real, fake))) for kind in self.discs)
            parts["adv"] = adv
            total = total + w_adv * cfg.adv * adv
        logs = {f"loss_{k}": v.item() for k, v in parts.items()}
        logs.update(loss=total.item(), w_adv=w_adv)
        return total, logs

    def describe(self) -> dict[str, Any]:
        """What a run records about its losses: the perceptual network actually used (and any fallback),
        the discriminators and the temporal term."""
        perc = self.perceptual
        return {"perceptual": f"{perc.net} {'/'.join(perc.layers)}" if perc else "none",
                "perceptual_fallback": perc.fallback if perc else None, "discriminators": list(self.discs),
                "temporal_loss": self.cfg.temporal}

    def _input_frames(self, lq: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """The centre LQ frame of every window at output size: what the flow is estimated on."""
        k = lq.shape[1] - 2 * self.n
        centres = bicubic_up(lq[:, self.n:self.n + k].flatten(0, 1), size[-1] // lq.shape[-1])
        return centres.unflatten(0, (lq.shape[0], k))  # input_flows clamps before quantising


def generate(net: nn.Module, n: int, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device,
             autocast: Callable[[], Any], pingpong: bool):
    """One generator forward on a batch of short clips -> (lq, real, fake, reversed_centre).

    fake: (B, k, 3, H, W), one output per clip frame; with `pingpong`, reversed_centre holds the
    centre frame again from its window in reversed time order (eq. 10), in the same forward.
    """
    lq, real = (t.to(device, non_blocking=True) for t in batch)
    if real.ndim == 4:  # single-frame samples (frames_out=1): a clip of one frame
        real = real[:, None]
    windows = sequence_windows(lq, n)  # (B, k, 2n+1, 3, h, w)
    b, k = windows.shape[:2]
    batch_windows = windows.flatten(0, 1)
    if pingpong:
        batch_windows = torch.cat([batch_windows, windows[:, k // 2].flip(1)])
    with autocast():
        out = net(batch_windows).float()
    return lq, real, out[:b * k].unflatten(0, (b, k)), (out[b * k:] if pingpong else None)


def gan_step(net: nn.Module, n: int, objective: GanObjective, g_opt: torch.optim.Optimizer,
             d_opt: Optional[torch.optim.Optimizer], schedulers: dict[str, Any], cfg: GanTrainParams, device: torch.device,
             dtype: Optional[torch.dtype], scalers: tuple, g_params: list[torch.Tensor],
             weight: Callable[[int], float], ema: Optional[AveragedModel] = None, model: Optional[nn.Module] = None):
    """The `step` of a phase-2 `Phase`: D update(s), then one G update, on one batch of short clips."""
    d_params = [p for d in objective.discs.values() for p in d.parameters()]
    pingpong = objective.pingpong
    autocast = autocaster(device, dtype)

    def step(batch: tuple[torch.Tensor, torch.Tensor], it: int) -> dict[str, float]:
        lq, real, fake, reversed_centre = generate(net, n, batch, device, autocast, pingpong)
        w, logs = weight(it), {}
        if w > 0 and d_opt is not None:
            for _ in range(cfg.d_steps):
                with autocast():
                    loss_d, logs = objective.discriminator_loss(real, fake)
                optimise(loss_d, d_opt, d_params, cfg.grad_clip, scalers[1])
            schedulers["d"].step()  # once per iteration: D's cosine spans the iterations after the warm-up
        with autocast():
            loss_g, g_logs = objective.generator_losses(lq, real, fake, reversed_centre, w)
        optimise(loss_g, g_opt, g_params, cfg.grad_clip, scalers[0])
        schedulers["g"].step()
        if ema is not None:
            ema.update_parameters(model)
        return {**g_logs, **logs, "lr": g_opt.param_groups[-1]["lr"]}

    return step


def load_stage_a(path: str | Path) -> nn.Module:
    """The phase-1 model a two-stage generator starts from; any other model file is an error naming it."""
    stage_a = load_model(path)
    if getattr(stage_a, "arch", None) != "stage_a":
        raise VQEError(f"{path}: expected a Stage A model, got {stage_a.arch!r}")
    return stage_a


def generator_groups(gen: Generator, a_lr: float, b_lr: float, offset_lr_mult: float) -> list[dict[str, Any]]:
    """Optimiser groups of G = G_B(G_A(.)): Stage A only when `a_lr` > 0 (frozen otherwise), Stage B at `b_lr`."""
    gen.stage_a.requires_grad_(a_lr > 0)
    groups = gen.stage_a.param_groups(a_lr, offset_lr_mult) if a_lr > 0 else []
    if gen.stage_b is not None:
        groups.append({"params": list(gen.stage_b.parameters()), "lr": b_lr})
    return groups


def train_stage_b(params: Params, *, stage_a_path: str | Path = "models/stage_a.pt",
                  model_path: str | Path = "models/gan_evh.pt", run_dir: str | Path = "checkpoints/stage_b",
                  live_dir: Optional[str | Path] = "results/train/stage_b",
                  summary_path: Optional[str | Path] = "results/train/stage_b.json",
                  progress: bool = True, validate: bool = True) -> dict[str, Any]:
    """Phase 2 (and the optional joint fine-tune); exports the full generator to `model_path`.
    `validate=False` skips validation (the ablation study scores its runs itself)."""
    sb, cfg = params.stage_b, params.stage_b.train
    dist = distributed.setup(cfg.device)
    try:
        manifest = Manifest.load(params.synth.out_dir)
        stage_a = load_stage_a(stage_a_path)
        torch.manual_seed(params.seed)
        gen = from_stage_a(stage_a, sb.model).to(dist.device)
        low_res = stage_a.scale > 1
        validator = Validator(manifest, gen.n, low_res=low_res, kbps=validation_kbps(params), frames=cfg.val_frames,
                              device=dist.device, consecutive=True) if dist.main and validate else None
        summary: dict[str, Any] = {"val_input": validator.input_scores if validator else {},
                                   "val_stage_a": validator(gen.stage_a) if validator else {}}
        common = dict(manifest=manifest, dist=dist, validator=validator, progress=progress,
                      fp_parts=(asdict(sb), params.seed, params.synth.scale, sha256sum(manifest.root / "manifest.json"),
                                sha256sum(Path(stage_a_path)), dist.world, checkpoint.code_digest()))
        trains_a = cfg.stage_a_lr > 0
        discs = build_discriminators(sb.disc).to(dist.device) if sb.loss.adv > 0 else nn.ModuleDict()
        common["discs"] = discs  # the joint fine-tune continues with the phase-2 discriminators
        if gen.stage_b is None and not trains_a:
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
        summary.update(device=str(dist.device), processes=dist.world, threads=torch.get_num_threads(),
                       parameters_stage_b=sum(p.numel() for p in gen.stage_b.parameters()) if gen.stage_b else 0)
        if dist.main:
            export(model_path, final, summary, summary_path, profile=params.profile_name)
        return summary
    finally:
        distributed.teardown()


def _run_phase(name: str, gen: Generator, params: Params, cfg: GanTrainParams, *, a_lr: float, b_lr: float, weight: Callable[[int], float], run_dir: Path, live_dir: Optional[Path],
               manifest: Manifest, dist, validator: Optional[Validator], progress: bool,
               fp_parts: tuple, discs: nn.ModuleDict) -> tuple[nn.Module, dict[str, Any]]:
    """Build optimisers, discriminators and the step for one GAN phase and run it on the shared loop."""
    sb = params.stage_b
    groups = generator_groups(gen, a_lr, b_lr, params.stage_a.train.offset_lr_mult)
    g_params = [p for g in groups for p in g["params"]]
    g_opt = torch.optim.Adam(groups, betas=tuple(cfg.betas))
    d_opt = torch.optim.Adam(discs.parameters(), lr=cfg.d_lr, betas=tuple(cfg.betas)) if len(discs) else None
    scheds = {"g": cosine(g_opt, cfg.iters, cfg.lr_min)}
    if d_opt is not None:
        scheds["d"] = cosine(d_opt, max(1, cfg.iters - cfg.warmup), cfg.lr_min)
    net: nn.Module = DistributedDataParallel(gen) if dist.world > 1 else gen
    run_discs = {k: DistributedDataParallel(d) if dist.world > 1 else d for k, d in discs.items()}
    objective = GanObjective(sb.loss, run_discs, gen.n, dist.device)
    dtype = autocast_dtype(dist.device, cfg.amp)
    scalers = tuple(torch.amp.GradScaler("cuda", enabled=dtype == torch.float16) for _ in range(2))
    ema = AveragedModel(gen, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
    final = ema.module if ema is not None else gen
    step = gan_step(net, gen.n, objective, g_opt, d_opt, scheds, cfg, dist.device, dtype, scalers,
                    g_params, weight, ema, gen)
    modules = {"generator": gen, "discriminators": discs, **({"ema": ema} if ema is not None else {})}
    optimizers = {"g": g_opt, **({"d": d_opt} if d_opt else {})}
    phase = Phase(name, modules, optimizers, scheds, step, validate=(lambda: validator(final)) if validator else None)
    dataset = TrainPatches(manifest, "train", gen.n, cfg.patch, low_res=gen.scale > 1, seed=params.seed,
                           rate_ids=cfg.rate_ids, frames_out=SEQ_FRAMES)
    fp = checkpoint.fingerprint(name, *fp_parts)
    summary = fit(phase, dataset, cfg, run_dir=run_dir, seed=params.seed, fp=fp, dist=dist, live_dir=live_dir,
                  progress=progress)
    summary.update(objective.describe(), stage_a_trained=a_lr > 0, amp=amp_name(dtype))
    return final, summary

