"""Restoration speed of trained models, back to back on the same frames.

Two numbers per model: frames/s of the model inside `enhance_frames` on the decoded frames, and
frames/s of the whole `vqe enhance` (`enhance_video`: decode, enhance, encode) on a short video
made from the same frames. The evaluation stage records `enhance_fps` too, but its runs happen
minutes apart on a shared machine; here every model runs in one process, interleaved, on the same
input (the test clip's first frames at the main bitrate), so their ratio is meaningful.

    python benchmarks/enhance_speed.py models/gan_evh.pt models/nogan_fast.pt --frames 12 \
        --out results/benchmarks/enhance_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vqe.atomic import write_json
from vqe.config import load_params
from vqe.data.manifest import Manifest
from vqe.data.codec import EncodeSettings, encode
from vqe.enhance import default_batch, enhance_frames, enhance_video
from vqe.evaluate import sample_clip
from vqe.metrics.fidelity import resolve_device
from vqe.models import load_model


def frames_per_second(model: torch.nn.Module, frames, device: torch.device, batch: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in enhance_frames(model, frames, batch=batch, device=device))
    return count / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="windows per forward pass (default as `vqe enhance`)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    params = load_params(args.params)
    device = resolve_device(None if args.device == "auto" else args.device)
    if args.batch is None:
        args.batch = default_batch(device)
    manifest = Manifest.load(params.synth.out_dir)
    clip = sample_clip(manifest)
    entry = next(e for e in manifest.select("test") if e.clip == clip and e.kbps_target == params.eval.main_kbps)
    models = {Path(p).stem: load_model(p, device) for p in args.models}
    times: dict[str, list[float]] = {name: [] for name in models}
    video: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for low_res in {m.scale > 1 for m in models.values()}:  # the input video, as a user would have it
            clips[low_res] = Path(tmp, f"in_{low_res}.mkv")
            encode(manifest.lq(entry, low_res=low_res)[:args.frames], clips[low_res], EncodeSettings(crf=18))
        for _ in range(args.repeats + 1):  # the first round warms up and is discarded
            for name, model in models.items():
                frames = manifest.lq(entry, low_res=model.scale > 1)[:args.frames]
                times[name].append(frames_per_second(model, frames, device, args.batch))
        for name, model in models.items():
            video[name] = enhance_video(clips[model.scale > 1], Path(tmp, f"{name}.mp4"), model, batch=args.batch,
                                        device=device, progress=False)["fps"]
    out_size = manifest.gt(clip)[0].shape
    result = {
        "clip": clip, "rate_id": entry.rate_id, "frames": args.frames, "output": f"{out_size[1]}x{out_size[0]}",
        "device": str(device), "batch": args.batch, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "fps": {name: statistics.median(t[1:]) for name, t in times.items()},
        "fps_runs": {name: t[1:] for name, t in times.items()},
        "fps_vqe_enhance": video,
        "parameters": {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()},
    }
    names = list(models)
    result["speedup_vs_first"] = {n: result["fps"][n] / result["fps"][names[0]] for n in names[1:]}
    result["speedup_vs_first_vqe_enhance"] = {n: video[n] / video[names[0]] for n in names[1:]}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
