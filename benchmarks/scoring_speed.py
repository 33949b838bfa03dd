"""Wall time of Table 1's scoring: one `evaluate_methods` run of a method over every test encode (the work of an
`evaluate@<method>` / `baselines@<method>` stage less its kernel start), split into the method's own time and
the scoring, with the host's load average beside it.

Run from the repository root after `dvc repro synthesise` (and the method's training, for a trained one):

    python benchmarks/scoring_speed.py input --label after --out results/benchmarks/scoring_speed.json

Rows accumulate in `--out` under their label, so the same command run on an older checkout (e.g. with
`PYTHONPATH` pointing at it) records the "before" row of an A/B on the same host.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from vqe.config import Params, load_params
from vqe.data.manifest import Manifest
from vqe.evaluation.evaluate import evaluate_methods, method_by_name
from vqe.util.atomic import write_json


def time_evaluation(method: str, params: Params, manifest: Manifest) -> dict:
    """Seconds of one `evaluate_methods` run of `method` into a scratch folder, and the method's own share."""
    run = method_by_name(method, manifest, params.eval)
    own = 0.0

    def timed(entry, span):
        nonlocal own
        t0 = time.perf_counter()
        out = run(entry, span)
        own += time.perf_counter() - t0
        return out

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        t0 = time.perf_counter()
        rows = evaluate_methods({method: timed}, manifest, params.eval, results_dir=scratch)
        total = time.perf_counter() - t0
    frames = sum(len(r["frames_scored"]) for r in rows[method])
    return {"method": method, "seconds": round(total, 2), "method_seconds": round(own, 2),
            "scoring_seconds": round(total - own, 2), "frames_scored": frames,
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("methods", nargs="+", help="Table 1 methods (input, lanczos, stage_a, stage_a_release, ...)")
    ap.add_argument("--label", required=True, help="the row's name in --out (e.g. before / after)")
    ap.add_argument("--out", default="results/benchmarks/scoring_speed.json")
    args = ap.parse_args()
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {}
    record.setdefault("host", f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                              f"{torch.get_num_threads()} torch threads")
    params = load_params("params.yaml")
    manifest = Manifest.load(params.synth.out_dir)
    rows = [time_evaluation(m, params, manifest) for m in args.methods]
    for r in rows:
        print(f"{args.label}: {r['method']}: {r['seconds']:.1f} s ({r['scoring_seconds']:.1f} s scoring "
              f"{r['frames_scored']} frames), load {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}")
    record[args.label] = rows
    write_json(out, record)


if __name__ == "__main__":
    main()
