"""What bf16 autocast would do to training on the CPU: Stage A of the current params (`tiny`), trained in full
with its test-span curve (the scaling study's `test_psnr_gain`), once in float32 as the trainers run on a CPU
today and once under CPU autocast to bfloat16, which they use on CUDA only (`vqe.train.core.amp.autocast_dtype`).

The run's speed and its gain along the run answer one question: is a faster `make repro` on CPUs with native
bf16 (AVX512-BF16 or AMX) worth the quality it costs? Run from the repository root after `dvc repro synthesise`:

    python benchmarks/cpu_amp_training.py --amp none bf16 --out results/benchmarks/cpu_amp_training.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

import vqe.train.stage_a as stage_a
from vqe.config import load_params
from vqe.inference.enhance import cpu_bf16
from vqe.release import hardware
from vqe.studies.scaling import read_curve
from vqe.train.core.validate import test_span_scores
from vqe.util.atomic import write_json


def train(amp: str, params_file: str = "params.yaml") -> dict:
    """Train Stage A of `params_file` in a scratch folder, with CPU autocast to `amp` ("none" or "bf16")."""
    params = load_params(params_file)
    dtype = {"none": None, "bf16": torch.bfloat16}[amp]
    stage_a.autocast_dtype = lambda device, _amp: dtype  # the trainer's own switch, opened to the CPU
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        summary = stage_a.train_stage_a(params, model_path=root / "stage_a.pt", run_dir=root / "run",
                                        live_dir=root / "live", summary_path=None, progress=False,
                                        extra_scores=test_span_scores(params))
        curve = read_curve(root / "live", required=("test_psnr_gain",))
    return {"amp": summary["amp"], "iterations": summary["iterations"], "seconds": round(summary["seconds"], 1),
            "it_per_s": round(summary["it_per_s"], 3), "curve": curve,
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amp", nargs="+", choices=["none", "bf16"], default=["none", "bf16"])
    ap.add_argument("--out", default="results/benchmarks/cpu_amp_training.json")
    args = ap.parse_args()
    runs = {}
    for amp in args.amp:
        runs[amp] = train(amp)
        last = runs[amp]["curve"][-1]
        print(f"Stage A, autocast {amp}: {runs[amp]['seconds']:.0f} s ({runs[amp]['it_per_s']:.2f} it/s), "
              f"test ΔPSNR {last['test_psnr_gain']:+.3f} dB at iteration {last['iteration']}")
    write_json(args.out, {"host": f"{hardware()}, {torch.get_num_threads()} threads, native bf16: {cpu_bf16()}",
                          "profile": load_params("params.yaml").profile_name, "runs": runs})


if __name__ == "__main__":
    main()
