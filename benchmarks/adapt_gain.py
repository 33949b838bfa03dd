"""Test-time adaptation on the test clip: how much `vqe enhance --adapt` gains, and how well its
ground-truth-free stopping rule tracks the true gain.

Adapts a trained model on the decoded test clip at one bitrate (exactly what `vqe enhance --adapt` does; the
ground truth is never seen by the adaptation) and, at every hold-out evaluation, also scores the model on the
evaluation span against the ground truth (timed apart from the budget). Reports the true gain of the kept
state over the unadapted model, and the hold-out and true curves side by side. Run after `dvc repro`:

    python benchmarks/adapt_gain.py --model models/stage_a.pt --seconds 180 [--kbps 62.5] [--clip carphone]
        [--lpips 0.05]

`--clip` names any clip with encodes in the manifest (the test clip, or a val clip); `--lpips W` adapts on
L1 + W x LPIPS-alex, its hold-out keeping the state of lowest LPIPS (`vqe.inference.adapt`). The true LPIPS is reported beside PSNR.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vqe.config import load_params
from vqe.data.manifest import Manifest
from vqe.evaluation.evaluate import eval_runs
from vqe.inference.adapt import adapt, input_bpp
from vqe.inference.enhance import restore_span
from vqe.metrics.fidelity import psnr
from vqe.metrics.perceptual import lpips_clip
from vqe.models.build import load_model
from vqe.util.atomic import write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default="models/stage_a.pt")
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--kbps", type=float, default=None, help="test bitrate (default: eval.main_kbps)")
    ap.add_argument("--clip", default="bbb")
    ap.add_argument("--lpips", type=float, default=0.0, help="LPIPS-alex weight of the adaptation loss")
    ap.add_argument("--out", default=None,
                    help="default: results/benchmarks/adapt_<model id>_<clip>_<kbps>k_<seconds>s[_lpips<W>].json")
    args = ap.parse_args()
    params = load_params(args.params)
    kbps = args.kbps or params.eval.main_kbps
    manifest = Manifest.load(params.synth.out_dir)
    entries = [e for e in manifest.encodes if e.clip == args.clip and e.kbps_target == kbps]
    if not entries:
        raise SystemExit(f"{args.clip} has no encode at {kbps} kbps in {manifest.root}")
    entry = entries[0]
    lq, gt = np.asarray(manifest.lq(entry, low_res=True)), np.asarray(manifest.gt(entry.clip))
    runs = eval_runs(params.eval, entry.frames)
    frames = [t for r in runs for t in r]

    def truth(model: torch.nn.Module) -> dict[str, float]:
        out = np.concatenate([restore_span(model, lq, r[0], len(r), batch=1) for r in runs])
        return {"true_psnr": float(psnr(out, gt[frames]).mean()),
                "true_lpips": float(lpips_clip(out, gt[frames])[0].mean())}

    model = load_model(args.model)
    before = truth(model)
    model, report = adapt(model, lq, bpp=input_bpp(manifest.root / entry.stream), fps=entry.fps,
                          seconds=args.seconds, perceptual=args.lpips, on_eval=truth)
    after = truth(model)
    for p in report.curve:
        p["true_gain"] = p.pop("true_psnr") - before["true_psnr"]
        p["true_lpips_gain"] = p.pop("true_lpips") - before["true_lpips"]
    result = {"model": args.model, "clip": args.clip, "kbps": kbps, "frames_scored": frames,
              "psnr_before": before["true_psnr"], "psnr_after": after["true_psnr"],
              "true_gain": after["true_psnr"] - before["true_psnr"],
              "lpips_before": before["true_lpips"], "lpips_after": after["true_lpips"],
              "true_lpips_gain": after["true_lpips"] - before["true_lpips"],
              "threads": torch.get_num_threads(), "report": asdict(report),
              "best_possible_on_curve": max(p["true_gain"] for p in report.curve)}
    model_id = Path(args.model).stem + ("_release" if Path(args.model).parent.name == "release" else "")
    tag = f"_lpips{args.lpips:g}" if args.lpips else ""
    out = Path(args.out or f"results/benchmarks/adapt_{model_id}_{args.clip}_{kbps:g}k_{args.seconds:g}s{tag}.json")
    write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("report", "frames_scored")}))


if __name__ == "__main__":
    main()
