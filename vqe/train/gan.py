"""Every adversarial game, in one module and one form (`vqe.models.parts.objective.Adversary`: a discriminator
and its losses): ours (`ragan`, the relativistic game of phase 2 and NoGAN, one per discriminator) and Table 1's
(`adversary(game)`: the game `vqe.registry.GAMES` names, each paper's discriminator and losses, played by
`vqe.train.baseline`; ESRGAN's relativistic game on our PatchGAN is defined here).

Our game, played by phase 2 (`stage_b`) and NoGAN (`nogan`):

* `GanObjective`: eq. 7-11 on one batch, `discriminator_loss` and `generator_losses` with their
  logged parts.
* `generate`: one generator forward on a batch of short clips (and, for ping-pong, the reversed
  centre windows in the same batch).
* `GanUpdates`: what one phase's updates share (the generator as run, the objective, precision,
  gradient clipping, the two loss scalers), with the single discriminator update
  (`discriminator_update`) and the single generator update (`generator_update`, at an adversarial
  weight `w_adv`; 0 = no discriminator is called).
* `gan_step`: one iteration of phase 2 on the shared loop: `d_steps` discriminator updates once
  the weight is positive, then one generator update, both on the same generator forward.

How the phases use them: phase 2 runs `gan_step` with the warm-up/ramp weight; NoGAN's generator
pre-training runs it at weight 0 without discriminators; critic pre-training runs discriminator
updates only, on a frozen generator's output (`GanUpdates.generate(batch, frozen=True)`); the
hand-off alternates discriminator updates and generator updates at weight 1.

DDP note: every module runs exactly one forward per backward (real and fake go through a
discriminator as one batch; the reversed ping-pong windows ride in the generator's batch).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, NamedTuple, Optional

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from vqe.config import GanLoss
from vqe.losses import (
    flow_temporal_loss,
    input_flows,
    perceptual_loss,
    ping_pong_loss,
    relativistic_loss,
)
from vqe.models.parts.blocks import sequence_windows
from vqe.models.parts.discriminator import PatchDiscriminator, stack_frames
from vqe.models.parts.objective import Adversary
from vqe.registry import GAMES
from vqe.train.core.amp import autocaster, grad_scaler
from vqe.train.core.loop import optimise
from vqe.util.upscale import bicubic_up

SEQ_FRAMES = 3  # frames per training sample: D_T judges 3 consecutive frames (§III-C)
Batch = tuple[torch.Tensor, torch.Tensor]


def critic_accuracy(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Relativistic accuracy: the share of real logits above the mean fake one and of fake logits below
    the mean real one (0.5 = cannot tell them apart)."""
    return 0.5 * float((real > fake.mean()).float().mean() + (fake < real.mean()).float().mean())


def ragan(kind: str, disc: nn.Module) -> Adversary:
    """Our game (eq. 7-9) on one discriminator: the relativistic average GAN of a PatchGAN that judges single
    frames ("spatial", D_S) or three consecutive frames stacked on channels ("temporal", D_T). D runs once on
    [real; fake] (one forward per backward keeps DDP happy); `d_loss` logs the critic's view of both."""
    prepare = stack_frames if kind == "temporal" else (lambda x: x.flatten(0, 1))
    tag = kind[0]  # s | t

    def logits(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        real, fake = prepare(real), prepare(fake)
        out = d(torch.cat([real, fake])).float()
        return out[:len(real)], out[len(real):]

    def d_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: Any) -> torch.Tensor:
        lr, lf = logits(d, real, fake)
        loss = relativistic_loss(lr, lf)
        game.logs.update({f"loss_d_{tag}": loss.item(),
                          f"d_real_{tag}": torch.sigmoid(lr - lf.mean()).mean().item(),  # P(real looks more real)
                          f"d_fake_{tag}": torch.sigmoid(lf - lr.mean()).mean().item(),
                          f"acc_{tag}": critic_accuracy(lr, lf)})
        return loss

    def g_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: Any) -> torch.Tensor:
        return relativistic_loss(*reversed(logits(d, real, fake)))

    game = Adversary(disc, d_loss, g_loss)
    return game


class GanObjective:
    """Eq. 7-11 on one batch: `generator_losses` and `discriminator_loss`, with their logged parts; the
    adversarial terms are our game's (`ragan`), one per discriminator."""

    def __init__(self, cfg: GanLoss, discs: dict[str, nn.Module], n: int, device: torch.device) -> None:
        self.cfg, self.discs, self.n = cfg, discs, n
        self.games = {kind: ragan(kind, d) for kind, d in discs.items()}
        self.pingpong = cfg.temporal == "pingpong" and cfg.pp > 0  # the generator runs reversed windows too
        self.perceptual = perceptual_loss(cfg.perceptual_net).to(device) if cfg.perc > 0 else None

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        total, logs = real.new_zeros(()), {}
        for game in self.games.values():
            total = total + game.d_loss(game.disc, real, fake.detach(), None)
            logs.update(game.logs)
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
            adv = sum(game.g_loss(game.disc, real, fake, None) for game in self.games.values())
            parts["adv"] = adv
            total = total + w_adv * cfg.adv * adv
        logs = {f"loss_{k}": v.item() for k, v in parts.items()}
        logs.update(loss=total.item(), w_adv=w_adv)
        return total, logs

    def describe(self) -> dict[str, Any]:
        """What a run records about its losses: the perceptual network used, the discriminators and the
        temporal term."""
        perc = self.perceptual
        return {"perceptual": f"{perc.net} {'/'.join(perc.layers)}" if perc else "none",
                "discriminators": list(self.discs),
                "temporal_loss": self.cfg.temporal}

    def _input_frames(self, lq: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """The centre LQ frame of every window at output size: what the flow is estimated on."""
        k = lq.shape[1] - 2 * self.n
        centres = bicubic_up(lq[:, self.n:self.n + k].flatten(0, 1), size[-1] // lq.shape[-1])
        return centres.unflatten(0, (lq.shape[0], k))  # input_flows clamps before quantising


class Clip(NamedTuple):
    """One generator forward on a batch of short clips (see `generate`)."""

    lq: torch.Tensor  # (B, 2n+k, 3, h, w)
    real: torch.Tensor  # (B, k, 3, H, W)
    fake: torch.Tensor  # (B, k, 3, H, W), one output per clip frame
    reversed_centre: Optional[torch.Tensor]  # (B, 3, H, W) with ping-pong, else None


def generate(net: nn.Module, n: int, batch: Batch, device: torch.device, autocast: Callable[[], Any],
             pingpong: bool) -> Clip:
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
    return Clip(lq, real, out[:b * k].unflatten(0, (b, k)), out[b * k:] if pingpong else None)


class GanUpdates:
    """The updates of one adversarial phase: the generator forward, one discriminator update and one
    generator update, sharing the generator as run (`net`, a DDP wrapper under torchrun), the objective
    (which holds the discriminators as run), the precision, the gradient clipping and the two loss
    scalers (generator, discriminators; pass `scalers` to keep them across phases)."""

    def __init__(self, net: nn.Module, objective: GanObjective, device: torch.device, dtype: Optional[torch.dtype],
                 grad_clip: float, scalers: Optional[tuple[torch.amp.GradScaler, torch.amp.GradScaler]] = None) -> None:
        self.net, self.objective, self.device, self.grad_clip = net, objective, device, grad_clip
        self.autocast = autocaster(device, dtype)
        self.scalers = scalers or (grad_scaler(dtype), grad_scaler(dtype))
        self.d_params = [p for d in objective.discs.values() for p in d.parameters()]

    def generate(self, batch: Batch, *, frozen: bool = False) -> Clip:
        """The generator's output on `batch`; `frozen` (the generator is not updated from it): without
        gradients and without the reversed ping-pong windows."""
        if frozen:
            with torch.no_grad():
                return generate(self.net, self.objective.n, batch, self.device, self.autocast, pingpong=False)
        return generate(self.net, self.objective.n, batch, self.device, self.autocast, self.objective.pingpong)

    def discriminator_update(self, clip: Clip, d_opt: torch.optim.Optimizer, steps: int = 1) -> dict[str, float]:
        """`steps` discriminator updates on real vs `clip`'s output (no gradient into the generator);
        the logs of the last one."""
        logs: dict[str, float] = {}
        for _ in range(steps):
            with self.autocast():
                loss_d, logs = self.objective.discriminator_loss(clip.real, clip.fake)
            optimise(loss_d, d_opt, self.d_params, self.grad_clip, self.scalers[1])
        return logs

    def generator_update(self, clip: Clip, g_opt: torch.optim.Optimizer, g_params: list[torch.Tensor],
                         w_adv: float) -> dict[str, float]:
        """One generator update on `clip` with the adversarial term at weight `w_adv` (0: content losses only)."""
        with self.autocast():
            loss_g, logs = self.objective.generator_losses(clip.lq, clip.real, clip.fake, clip.reversed_centre, w_adv)
        optimise(loss_g, g_opt, g_params, self.grad_clip, self.scalers[0])
        return logs


def gan_step(updates: GanUpdates, g_opt: torch.optim.Optimizer, g_params: list[torch.Tensor],
             schedulers: dict[str, Any], weight: Callable[[int], float], *,
             d_opt: Optional[torch.optim.Optimizer] = None, d_steps: int = 1, ema: Optional[AveragedModel] = None,
             model: Optional[nn.Module] = None) -> Callable[[Batch, int], dict[str, float]]:
    """The `step` of phase 2's `Phase`: with w = weight(it) > 0 and discriminators, `d_steps` D updates
    (and D's scheduler once), then one G update at w (G's scheduler, the EMA of `model`), on one batch."""

    def step(batch: Batch, it: int) -> dict[str, float]:
        clip = updates.generate(batch)
        w, logs = weight(it), {}
        if w > 0 and d_opt is not None:
            logs = updates.discriminator_update(clip, d_opt, d_steps)
            schedulers["d"].step()  # once per iteration: D's cosine spans the iterations after the warm-up
        g_logs = updates.generator_update(clip, g_opt, g_params, w)
        schedulers["g"].step()
        if ema is not None:
            ema.update_parameters(model)
        return {**g_logs, **logs, "lr": g_opt.param_groups[-1]["lr"]}

    return step


def relativistic_adversary(cfg: dict[str, Any], patch: int) -> Adversary:
    """ESRGAN's relativistic average GAN, on our PatchGAN (ESRGAN's own D is a VGG-style classifier)."""

    disc = PatchDiscriminator(3, **cfg)
    return Adversary(disc, lambda d, real, fake, c: relativistic_loss(d(real), d(fake)),
                     lambda d, real, fake, c: relativistic_loss(d(fake), d(real)))


def adversary(game: str, cfg: dict[str, Any], patch: int) -> Adversary:
    """The discriminator and losses of adversarial game `game` (`vqe.registry.GAMES` says where each is defined:
    a paper's own game lives next to its architecture, so training one baseline imports no other)."""
    module, name = GAMES[game].split(":")
    return getattr(importlib.import_module(module), name)(cfg, patch)
