"""Memorisation benchmark: can each architecture over-fit 8 frames of one clip by >= +2 dB?

A model that cannot even memorise a handful of frames is capped by its architecture, its up-sampling
path or a bug (a frozen layer, a wrong base), not by its data; one that can shows that nothing but the
data and the budget limits what it learns. Each architecture is trained with a plain L1 loss (Adam,
constant learning rate) on random patches of frames 0..7 of one training clip at the main bitrate and
scored on those same 8 frames as Table 1 scores (restored through `restore_span`, scored by
`vqe.metrics`), against the bicubic input row. Run after `dvc repro synthesise`:

    python benchmarks/memorise.py --seconds 240 [--clip bikes] [--out results/benchmarks/memorise.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqe.config import load_params
from vqe.data.dataset import TrainPatches
from vqe.data.manifest import Manifest
from vqe.models.fast import FastRestorer
from vqe.models.stage_a import StageA
from vqe.models.stage_b import Generator
from vqe.release import hardware
from vqe.studies.scaling import recipe_params
from vqe.train.core.validate import Validator
from vqe.util.atomic import write_json
from vqe.util.errors import VQEError
from vqe.util.fetch import sha256sum

FRAMES = 8


def architectures(params) -> dict[str, torch.nn.Module]:
    """Every architecture the pipeline trains, at the profile's sizes: the profile's Stage A and each Stage A
    recipe of the scaling study (`scaling.recipes`, e.g. the paper's PCD/RRDB one and a smaller stack), the
    two-stage generator and the fast restorer."""
    scale = params.synth.scale
    models = {"stage_a_main": StageA(**asdict(params.stage_a.model), scale=scale),  # the profile's own (recipe `main`)
              **{f"stage_a_{name}": StageA(**asdict(recipe_params(params, name).stage_a.model), scale=scale)
                 for name in params.scaling.recipes}}
    return {**models, "generator": Generator(stage_a=asdict(params.stage_a.model), stage_b=asdict(params.stage_b.model), scale=scale),
            "fast": FastRestorer(**asdict(params.nogan_fast.model), scale=scale)}


def one_clip(manifest: Manifest, clip: str, kbps: float) -> Manifest:
    """The manifest cut to one clip's encode at `kbps` (split 'train' kept, so the usual readers work)."""
    encodes = [e for e in manifest.encodes if e.clip == clip and e.kbps_target == kbps]
    if not encodes:
        raise VQEError(f"{manifest.root}: no encode of clip {clip!r} at {kbps} kbps")
    return Manifest(manifest.root, [manifest.clip(clip)], encodes)


def memorise(model: torch.nn.Module, manifest: Manifest, split: str, seconds: float, lr: float, patch: int,
             batch: int, seed: int) -> dict[str, float]:
    low_res = model.scale > 1
    patches = TrainPatches(manifest, split, model.n, patch, low_res=low_res, seed=seed)
    keep = [i for i, (_, t) in enumerate(patches.index) if t < FRAMES]
    score = Validator(manifest, model.n, low_res=low_res, kbps=None, frames=FRAMES, device=torch.device("cpu"),
                      split=split, runs=lambda length: [list(range(min(FRAMES, length)))])
    opt = torch.optim.Adam(model.parameters(), lr)
    rng = np.random.default_rng(seed)
    t0, it = time.perf_counter(), 0
    model.train()
    while time.perf_counter() - t0 < seconds:
        samples = [patches[int(keep[j]) + len(patches.index) * it] for j in rng.integers(len(keep), size=batch)]
        lq, gt = torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])
        loss = F.l1_loss(model(lq), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
    scores = score(model)
    return {"iterations": it, "seconds": time.perf_counter() - t0, "psnr_gain": scores["psnr_gain"],
            "lpips_gain": scores["lpips_gain"], "input_psnr": score.input_scores["psnr"],
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--clip", default="bikes", help="a training clip of the synthesised data")
    ap.add_argument("--seconds", type=float, default=240.0, help="training wall time per architecture")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--only", nargs="*", help="architectures to run (default: all)")
    ap.add_argument("--out", default="results/benchmarks/memorise.json")
    ap.add_argument("--note", default="", help="recorded with the results, e.g. what else ran on the machine")
    args = ap.parse_args()
    params = load_params(args.params)
    torch.manual_seed(params.seed)
    manifest = one_clip(Manifest.load(params.synth.out_dir), args.clip, params.eval.main_kbps)
    split = manifest.encodes[0].split
    results = {}
    for name, model in architectures(params).items():
        if args.only and name not in args.only:
            continue
        results[name] = memorise(model, manifest, split, args.seconds, args.lr, params.stage_a.train.patch,
                                 params.stage_a.train.batch, params.seed)
        print(name, json.dumps(results[name]), flush=True)
    write_json(Path(args.out), {"clip": args.clip, "kbps": params.eval.main_kbps, "frames": FRAMES,
                                "threads": torch.get_num_threads(), "lr": args.lr, "loss": "l1",
                                "target_psnr_gain": 2.0, "hardware": hardware(), "note": args.note,
                                "manifest_sha256": sha256sum(manifest.root / "manifest.json"),
                                "architectures": results})


if __name__ == "__main__":
    main()
