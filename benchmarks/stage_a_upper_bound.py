"""Diagnostic, not a result: how much can the `tiny` Stage A gain at all within its CPU budget?

Trains the `tiny` Stage A on the *test* clip itself (Big Buck Bunny frames 48.. at every bitrate; this
leaks test content on purpose) and scores frames 0..47 (16 frames spread over them) at the main bitrate
against the bicubic up-scaled decode, for the EMA weights and the raw ones. If even this cannot reach the
issue's +0.5 dB, the model/budget is the limit, not the training data. Run after `dvc repro synthesise`:

    python benchmarks/stage_a_upper_bound.py --iters 500 [stage_a.train.lr=2e-3 ...]

Training is phase 1's own (`vqe.train.stage_a.stage_a_phase` on the shared loop `vqe.train.core.loop.fit`:
the same optimiser, schedule, EMA and L1 + MS-SSIM step; the EMA is forced on, decay 0.995 unless
`stage_a.train.ema` sets one); scoring is the training Validator's (`vqe.train.core.validate.Validator`:
PSNR and LPIPS of the restored uint8 frames, scored as Table 1 is), on the test clip cut to its
first `--held-out` frames. A quick check that it runs: `--iters 2 --every 1`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vqe.config import load_params
from vqe.data.dataset import TrainPatches
from vqe.data.manifest import Manifest
from vqe.models.stage_a import StageA
from vqe.train.core import checkpoint, distributed
from vqe.train.core.loop import fit
from vqe.train.core.validate import Validator
from vqe.train.stage_a import stage_a_phase
from vqe.util.errors import VQEError
from vqe.util.fetch import sha256sum

HELD_OUT = 48  # frames 0..47 are held out for scoring; training uses the later frames
EMA_DECAY = 0.995  # when stage_a.train.ema is 0: the benchmark always reports the EMA weights too


class LaterFrames(Dataset):
    """`TrainPatches` restricted to one clip's frames from `first` on (every bitrate); sample i is still a
    pure function of (seed, i), with fresh crops every epoch, as the shared loop expects."""

    def __init__(self, patches: TrainPatches, clip: str, first: int) -> None:
        self.patches = patches
        self.keep = [j for j, (e, t) in enumerate(patches.index) if patches.entries[e].clip == clip and t >= first]
        if not self.keep:
            raise VQEError(f"clip {clip!r} has no frames from {first} on to train on")

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, j = divmod(i, len(self.keep))
        return self.patches[epoch * len(self.patches.index) + self.keep[j]]


def held_out_view(manifest: Manifest, clip: str, frames: int) -> Manifest:
    """The manifest of `clip` alone, its encodes cut to their first `frames` frames (what is scored)."""
    encodes = [replace(e, frames=min(e.frames, frames)) for e in manifest.encodes if e.clip == clip]
    return Manifest(manifest.root, [manifest.clip(clip)], encodes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=500, help="training iterations (the budget)")
    ap.add_argument("--every", type=int, default=100, help="score every this many iterations (and at the end)")
    ap.add_argument("--clip", default="bbb")
    ap.add_argument("--held-out", type=int, default=HELD_OUT, help="frames 0..N-1 are scored, N.. trained on")
    ap.add_argument("--frames", type=int, default=16, help="frames scored, spread over the held-out ones")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--run-dir", default=None, help="checkpoint folder (resumable); default: a temporary one")
    ap.add_argument("override", nargs="*", help="dotlist overrides, e.g. stage_a.train.lr=2e-3")
    args = ap.parse_args()
    p = load_params(args.params, args.override)
    m = Manifest.load(p.synth.out_dir)
    mc = p.stage_a.model
    cfg = replace(p.stage_a.train, iters=args.iters, ema=p.stage_a.train.ema or EMA_DECAY, val_every=args.every,
                  log_every=args.every, ckpt_every=args.iters)
    low_res = mc.mode == "sra"
    dist = distributed.setup(cfg.device)
    try:
        torch.manual_seed(p.seed)
        model = StageA(**asdict(mc), scale=p.synth.scale).to(dist.device)
        phase, final, describe = stage_a_phase(model, cfg, dist.device)
        phase.name = "stage_a_upper_bound"
        validator = Validator(held_out_view(m, args.clip, args.held_out), mc.n, low_res=low_res,
                              kbps=p.eval.main_kbps, frames=args.frames, device=dist.device,
                              split=m.clip(args.clip).split)
        patches = TrainPatches(m, m.clip(args.clip).split, mc.n, cfg.patch, low_res=low_res, seed=p.seed,
                               rate_ids=cfg.rate_ids)
        dataset = LaterFrames(patches, args.clip, args.held_out)
        t0, now = time.time(), {"it": 0}
        train_step = phase.step

        def step(batch: tuple[torch.Tensor, torch.Tensor], it: int) -> dict[str, float]:
            now["it"] = it
            return train_step(batch, it)

        def validate() -> dict[str, float]:
            ema, raw = validator(final), validator(model)
            print(f"it {now['it']}  {time.time() - t0:.0f} s  PSNR gain on frames 0..{args.held_out - 1}: "
                  f"EMA {ema['psnr_gain']:+.3f} dB, raw {raw['psnr_gain']:+.3f} dB  "
                  f"(LPIPS EMA {ema['lpips']:.4f}, raw {raw['lpips']:.4f}, input "
                  f"{validator.input_scores['lpips']:.4f})", flush=True)
            return {**{f"ema_{k}": v for k, v in ema.items()}, **{f"raw_{k}": v for k, v in raw.items()}}

        phase.step, phase.validate = step, validate
        fp = checkpoint.fingerprint(phase.name, asdict(p.stage_a), asdict(cfg), p.seed, p.synth.scale, args.clip,
                                    args.held_out, sha256sum(m.root / "manifest.json"), checkpoint.code_digest())
        with tempfile.TemporaryDirectory() as tmp:
            summary = fit(phase, dataset, cfg, run_dir=Path(args.run_dir or tmp), seed=p.seed, fp=fp, dist=dist,
                          progress=False)
        print(f"{summary['iterations']} iterations ({summary['it_per_s']:.2f} it/s), {describe()}, trained on "
              f"{len(dataset)} (encode, frame) items of {args.clip!r} frames {args.held_out}..; last scores "
              f"{summary['val']}", flush=True)
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
