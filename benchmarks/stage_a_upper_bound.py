"""Diagnostic, not a result: how much can the `tiny` Stage A gain at all within its CPU budget?

Trains the `tiny` Stage A on the *test* clip itself (Big Buck Bunny frames 48.. at every bitrate; this
leaks test content on purpose) and scores frames 0..47 (every 3rd) at the main bitrate against the
bicubic up-scaled decode. If even this cannot reach the issue's +0.5 dB, the model/budget is the limit,
not the training data. Run after `dvc repro synthesise`:

    python benchmarks/stage_a_upper_bound.py --iters 500 [stage_a.train.lr=2e-3 ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vqe.config import load_params
from vqe.data.dataset import augment, to_tensor, window_indices
from vqe.data.manifest import Manifest
from vqe.losses import PixelLoss
from vqe.models.stage_a import StageA
from vqe.train.validate import psnr_db

HELD_OUT = 48  # frames 0..47 are what `eval.max_frames` scores in tiny


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--clip", default="bbb")
    ap.add_argument("override", nargs="*")
    args = ap.parse_args()
    p = load_params("params.yaml", args.override)
    m = Manifest.load(p.synth.out_dir)
    mc, tc = p.stage_a.model, p.stage_a.train
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    model = StageA(mc, scale=p.synth.scale)
    opt = torch.optim.Adam(model.param_groups(tc.lr, tc.offset_lr_mult), betas=tuple(tc.betas))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.iters, tc.lr_min)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema or 0.995))
    loss_fn = PixelLoss(tc.ssim_weight)
    train = [(m.lq(e, low_res=True, mmap=False), m.gt(e.clip, mmap=False)) for e in m.encodes if e.clip == args.clip]
    test = next(e for e in m.encodes if e.clip == args.clip and e.kbps_target == p.eval.main_kbps)
    test_lq, test_up, test_gt = m.lq(test, low_res=True), m.lq(test), m.gt(args.clip)
    s, half = p.synth.scale, tc.patch // p.synth.scale

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        pairs = []
        for _ in range(tc.batch):
            lq, gt = train[rng.integers(len(train))]
            t = int(rng.integers(HELD_OUT, len(lq)))
            y, x = (int(rng.integers(0, n - half + 1)) for n in lq.shape[1:3])
            pairs.append(augment(lq[window_indices(t, mc.n, len(lq)), y:y + half, x:x + half],
                                 gt[t, s * y:s * (y + half), s * x:s * (x + half)], rng))
        return torch.stack([to_tensor(a) for a, _ in pairs]), torch.stack([to_tensor(b) for _, b in pairs])

    @torch.inference_mode()
    def gain(net: torch.nn.Module) -> float:
        net.eval()
        out, ref = [], []
        for t in range(0, HELD_OUT, 3):
            g = to_tensor(test_gt[t])[None]
            y = net(to_tensor(test_lq[window_indices(t, mc.n, test.frames)])[None]).clamp(0, 1)
            out.append(psnr_db(y, g))
            ref.append(psnr_db(to_tensor(test_up[t])[None], g))
        net.train()
        return float(np.mean(out) - np.mean(ref))

    t0 = time.time()
    for it in range(1, args.iters + 1):
        lq, gt = batch()
        loss = loss_fn(model(lq), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        ema.update_parameters(model)
        if it % 100 == 0 or it == args.iters:
            print(f"it {it}  {time.time() - t0:.0f} s  PSNR gain on frames 0..{HELD_OUT - 1}: "
                  f"EMA {gain(ema.module):+.3f} dB, raw {gain(model):+.3f} dB", flush=True)


if __name__ == "__main__":
    main()
