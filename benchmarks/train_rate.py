"""Training speed of a profile's Stage A on this device: iterations per second over a fixed time, and what the
profile's whole Stage A run (`stage_a.train.iters`) would take at that rate.

The step is the trainer's own (`vqe.train.stage_a.stage_a_phase`: Adam, the cosine schedule, the EMA, L1 +
MS-SSIM, autocast as `stage_a.train.amp` says), on batches of the profile's size cut from a panned photo: the
speed of a step does not depend on what the pixels show, so no synthesised data is needed.

    python benchmarks/train_rate.py --profile paper --seconds 120 --out results/benchmarks/gpu/train_rate.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F

from vqe.config import compose, params_from_dict
from vqe.inference.bench import resolve, synchronize
from vqe.inference.export import bench_frames
from vqe.models.stage_a import StageA
from vqe.train.stage_a import stage_a_phase
from vqe.util.atomic import write_json


def batches(n: int, batch: int, patch: int, scale: int, low_res: bool, count: int = 4):
    """`count` (lq, gt) batches: windows of 2n+1 frames of a panned photo, lq area-down-sampled when the model
    up-scales (mode sra) and the ground truth its centre frame."""
    frames = torch.from_numpy(bench_frames(patch + 8 * batch, patch, 2 * n + 1 + count)).permute(0, 3, 1, 2)
    frames = frames.float().div(255)
    out = []
    for k in range(count):
        crops = torch.stack([frames[k: k + 2 * n + 1, :, :, 8 * b: 8 * b + patch] for b in range(batch)])
        gt = crops[:, n]
        lq = F.interpolate(crops.flatten(0, 1), scale_factor=1 / scale, mode="area").unflatten(0, crops.shape[:2]) \
            if low_res else crops
        out.append((lq.contiguous(), gt.contiguous()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--seconds", type=float, default=120.0, help="timed training time (after 2 warm-up steps)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="stage_a.* overrides (e.g. stage_a.train.batch=4 for a CPU dry run)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = resolve(args.device)
    from omegaconf import OmegaConf

    data = compose(args.profile)
    merged = OmegaConf.merge(OmegaConf.create(data), OmegaConf.from_dotlist(args.set))
    params = params_from_dict(OmegaConf.to_container(merged), origin=f"profile {args.profile} {' '.join(args.set)}")
    cfg, mcfg = params.stage_a.train, params.stage_a.model
    torch.manual_seed(params.seed)
    model = StageA(**asdict(mcfg), scale=params.synth.scale).to(device)
    phase, _, describe = stage_a_phase(model, cfg, device)
    data_batches = [(lq.to(device), gt.to(device)) for lq, gt in
                    batches(mcfg.n, cfg.batch, cfg.patch, params.synth.scale, mcfg.mode == "sra")]
    for it in range(2):  # warm-up: allocations, cuDNN/oneDNN kernel choice
        phase.step(data_batches[it % len(data_batches)], it)
    synchronize(device)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        phase.step(data_batches[done % len(data_batches)], done + 2)
        done += 1
        if done % 10 == 0:
            synchronize(device)
    synchronize(device)
    seconds = time.perf_counter() - start
    rate = done / seconds
    result = {
        "profile": args.profile, "overrides": args.set, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "load_average_1m": os.getloadavg()[0], "torch": torch.__version__,
        "batch": cfg.batch, "patch": cfg.patch, "n": mcfg.n, "align": mcfg.align, "block": mcfg.block,
        "channels": mcfg.channels, "blocks": mcfg.blocks, "parameters": sum(p.numel() for p in model.parameters()),
        "iterations": done, "seconds": seconds, "it_per_s": rate, "profile_iters": cfg.iters,
        "full_run_hours": cfg.iters / rate / 3600, **describe(),
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None,
    }
    print(f"{args.profile} Stage A on {device}: {done} iterations in {seconds:.0f} s = {rate:.2f} it/s; its "
          f"{cfg.iters} iterations would take {result['full_run_hours']:.1f} h")
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
