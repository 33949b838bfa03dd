"""Speed-only models: a profile's architectures (Stage A, GAN-EVH = Stage A + B, the fast restorer) with their
initial weights, for `vqe bench` when the trained ones are not at hand. A model's speed does not depend on its
weights (none of these has data-dependent control flow; PCD's sampling positions move with the offsets, not
its cost), so they time what `dvc repro` would train.

    python benchmarks/profile_models.py --profile tiny --out models/bench
    vqe bench models/bench/tiny_*.pt
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import torch

from vqe.config import compose, params_from_dict
from vqe.models.build import build_model, save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = params_from_dict(compose(args.profile), origin=f"profile {args.profile}")
    scale, meta = params.synth.scale, {"profile": args.profile, "weights": "initial (speed only)"}
    torch.manual_seed(params.seed)
    models = {
        "stage_a": build_model("stage_a", asdict(params.stage_a.model), scale),
        "gan_evh": build_model("generator", {"stage_a": asdict(params.stage_a.model),
                                             "stage_b": asdict(params.stage_b.model)}, scale),
        "nogan_fast": build_model("fast", asdict(params.nogan_fast.model), scale),
    }
    for name, model in models.items():
        path = Path(args.out) / f"{args.profile}_{name}.pt"
        save_model(path, model.eval(), meta)
        print(f"{path}: {sum(p.numel() for p in model.parameters()):,} parameters")


if __name__ == "__main__":
    main()
