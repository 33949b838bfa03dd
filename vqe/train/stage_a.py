"""Phase 1 (§III-D): train Stage A alone with the pixel loss L1 + lambda * (1 - MS-SSIM) (eq. 5).

`train_stage_a(params)` builds the model from `params.stage_a`, trains it on random patches of the
training split with the shared loop, and exports the final weights (the EMA when enabled) to
`models/stage_a.pt`, with a summary (throughput, validation scores, what was used) as JSON.
Runs unchanged under `torchrun --nproc_per_node=N`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vqe.config import Params
from vqe.data.dataset import TrainPatches
from vqe.data.manifest import Manifest
from vqe.fetch import sha256sum
from vqe.losses import PixelLoss
from vqe.models.stage_a import StageA
from vqe.train import checkpoint, distributed
from vqe.train.loop import Phase, cosine, export, fit, optimise
from vqe.train.validate import Validator

log = logging.getLogger(__name__)


def autocast_dtype(device: torch.device, amp: str) -> Optional[torch.dtype]:
    """Mixed precision on CUDA only (bf16 or fp16); CPU trains in float32."""
    if device.type != "cuda" or amp == "none":
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocaster(device: torch.device, dtype: Optional[torch.dtype]) -> Callable[[], Any]:
    """A factory of autocast contexts (a no-op one when `dtype` is None)."""
    return lambda: torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def amp_name(dtype: Optional[torch.dtype]) -> str:
    """What a run's summary records as its precision: "bfloat16", "float16" or "none"."""
    return str(dtype).replace("torch.", "") if dtype else "none"


def train_stage_a(params: Params, *, model_path: str | Path = "models/stage_a.pt",
                  run_dir: str | Path = "checkpoints/stage_a", live_dir: Optional[str | Path] = "results/train/stage_a",
                  summary_path: Optional[str | Path] = "results/train/stage_a.json",
                  progress: bool = True, validate: bool = True) -> dict[str, Any]:
    """Phase 1; exports the model (EMA weights when `ema` > 0). `validate=False` skips validation
    (the ablation study scores its runs itself)."""
    cfg, mcfg = params.stage_a.train, params.stage_a.model
    dist = distributed.setup(cfg.device)
    try:
        manifest = Manifest.load(params.synth.out_dir)
        torch.manual_seed(params.seed)  # identical initial weights on every rank
        model = StageA(mcfg, scale=params.synth.scale).to(dist.device)
        net = DistributedDataParallel(model) if dist.world > 1 else model
        opt = torch.optim.Adam(model.param_groups(cfg.lr, cfg.offset_lr_mult), betas=tuple(cfg.betas))
        sched = cosine(opt, cfg.iters, cfg.lr_min)
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
        loss_fn = PixelLoss(cfg.ssim_weight)
        dtype = autocast_dtype(dist.device, cfg.amp)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        autocast = autocaster(dist.device, dtype)
        low_res = mcfg.mode == "sra"

        def step(batch: tuple[torch.Tensor, torch.Tensor], it: int) -> dict[str, float]:
            lq, gt = (t.to(dist.device, non_blocking=True) for t in batch)
            with autocast():
                out = net(lq)
            loss = loss_fn(out.float(), gt)
            optimise(loss, opt, list(model.parameters()), cfg.grad_clip, scaler)
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            return {"loss": loss.item(), "lr": sched.get_last_lr()[0], "offset_mean": max(model.align.offset_means())}

        final = ema.module if ema is not None else model
        validator = Validator(manifest, mcfg.n, low_res=low_res, kbps=validation_kbps(params), frames=cfg.val_frames,
                              device=dist.device) if dist.main and validate else None
        modules = {"model": model, **({"ema": ema} if ema is not None else {})}
        phase = Phase("stage_a", modules, {"adam": opt}, {"cosine": sched}, step,
                      validate=(lambda: validator(final)) if validator else None)
        dataset = TrainPatches(manifest, "train", mcfg.n, cfg.patch, low_res=low_res, seed=params.seed,
                               rate_ids=cfg.rate_ids)
        fp = checkpoint.fingerprint("stage_a", asdict(params.stage_a), params.seed, params.synth.scale,
                                    sha256sum(manifest.root / "manifest.json"), dist.world, checkpoint.code_digest())
        summary = fit(phase, dataset, cfg, run_dir=Path(run_dir), seed=params.seed, fp=fp, dist=dist,
                      live_dir=Path(live_dir) if live_dir else None, progress=progress)
        summary.update(device=str(dist.device), processes=dist.world, threads=torch.get_num_threads(),
                       parameters=sum(p.numel() for p in model.parameters()), loss=loss_fn.kind or "l1",
                       dcn="torchvision" if dist.device.type == "cuda" else "torch (grid_sample)",
                       amp=amp_name(dtype), ema=bool(cfg.ema),
                       val_input=validator.input_scores if validator else {})
        if dist.main:
            export(model_path, final, summary, summary_path, profile=params.profile_name)
        return summary
    finally:
        distributed.teardown()


def validation_kbps(params: Params) -> Optional[float]:
    """Validate at the main test bitrate, unless training data is encoded at a CRF (then every rate)."""
    return None if params.synth.train_crf is not None or params.synth.crf is not None else params.eval.main_kbps
