"""Does `torch.compile` pay? The model alone, eager against compiled (inductor), back to back on the same windows,
with the compile time and the largest difference of the outputs.

    python benchmarks/compile_speed.py models/release/*.pt --size 320x180 --out results/benchmarks/compile_cpu.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from vqe.inference.bench import environment, time_forward, windows
from vqe.inference.export import bench_frames
from vqe.models.build import load_model
from vqe.util.atomic import write_json


def frames_per_second(fn, x: torch.Tensor, repeats: int) -> float:
    """Windows per second of `fn`, timed as `vqe bench` times a model (its warm-up passes, then the median)."""
    return x.shape[0] / statistics.median(time_forward(fn, x, None, torch.device("cpu"), "fp32", repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--size", default="320x180", help="input frame size WIDTHxHEIGHT")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rows = {}
    for path in args.models:
        model = load_model(path)
        x, _ = windows(model, bench_frames(w, h, 6), 1, torch.device("cpu"), None)
        eager = frames_per_second(model, x, args.repeats)
        start = time.perf_counter()
        compiled = torch.compile(model)
        with torch.inference_mode():
            compiled(x)
        compile_s = time.perf_counter() - start
        fast = frames_per_second(compiled, x, args.repeats)
        with torch.inference_mode():
            diff = float((compiled(x) - model(x)).abs().max())
        rows[path] = {"eager_fps": eager, "compiled_fps": fast, "speedup": fast / eager, "compile_s": compile_s,
                      "max_abs_diff": diff}
        print(f"{path} at {w}x{h}: eager {eager:.2f} fps, compiled {fast:.2f} fps ({fast / eager:.2f}x), "
              f"compile {compile_s:.0f} s, outputs within {diff:.1e}", flush=True)
    if args.out:
        write_json(args.out, {"environment": environment(torch.device("cpu")), "input_size": [w, h],
                              "load_average_1m_after": os.getloadavg()[0], "models": rows})


if __name__ == "__main__":
    main()
