"""Codec generalisation (SUPERVEGAN §V, its Fig. 11 on H.265): models trained on H.264 input, tested on
the test clip(s) encoded by another codec (H.265, VP9, AV1) at the same target bitrates.

The encodes are made by the synthesis code itself (same down-scaling, rate calibration and intra
period; only `synth.codec` differs) into `data/codecs/<codec>/`, and scored by `vqe.evaluate` into
`results/codecs/<codec>/` exactly like the H.264 rows, so the BD-rate code applies unchanged. Scoring
starts `codecs.skip_frames` into the clip: x265's rate control starts every bitrate at nearly the same
quantiser, so its first frames look alike at 37.5 and 62.5 kbps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vqe.atomic import save_npy, write_json
from vqe.bdrate import bdrate_table, load_rd
from vqe.config import Params
from vqe.data.manifest import Manifest
from vqe.data.synthesise import synthesise
from vqe.errors import VQEError
from vqe.evaluate import evaluate_methods, method_by_name, per_rate


def codec_synth(params: Params, codec: str, out_dir: str | Path):
    """The synthesis parameters of the codec study: the test clips only, encoded by `codec`."""
    if codec not in params.codecs.codecs:
        raise VQEError(f"codecs.codecs: {codec!r} is not one of {params.codecs.codecs}")
    clips = [c for c in params.synth.clips if c.split == "test"]
    if not clips:
        raise VQEError("synth.clips: no test clip to encode for the codec study")
    rates = params.codecs.bitrates_kbps or params.synth.bitrates_kbps
    return replace(params.synth, codec=codec, clips=clips, out_dir=str(out_dir), bitrates_kbps=list(rates),
                   crf=None, train_crf=None, workers=1)


def skip_start(manifest: Manifest, frames: int) -> Manifest:
    """Drop the first `frames` decoded and ground-truth frames of every clip (the bitstreams stay whole), so
    that scoring starts past the encoder's rate-control start-up; models see the clip from there on."""
    if frames == 0:
        return manifest
    for clip in manifest.clips:
        if clip.frames <= frames + 1:
            raise VQEError(f"codecs.skip_frames: {frames} leaves nothing of the {clip.frames} frames of {clip.name!r}")
        save_npy(manifest.root / clip.gt, np.asarray(manifest.gt(clip.name, mmap=False)[frames:]))
        clip.frames -= frames
    for entry in manifest.encodes:
        for rel in (entry.lq, entry.lq_lr):
            save_npy(manifest.root / rel, np.load(manifest.root / rel)[frames:])
        entry.frames -= frames
    manifest.save()
    return manifest


def run_codec(params: Params, codec: str, data_dir: str | Path = "data/codecs",
              results_dir: str | Path = "results/codecs", models_dir: str | Path = "models") -> dict[str, list[dict]]:
    """Encode the test clips with `codec`, evaluate every `codecs.methods` on them; per-rate rows per method."""
    manifest = skip_start(synthesise(codec_synth(params, codec, Path(data_dir) / codec)), params.codecs.skip_frames)
    ev = replace(params.eval, max_frames=params.codecs.max_frames or params.eval.max_frames)
    methods = {m: method_by_name(m, manifest, ev, models_dir) for m in params.codecs.methods}
    rows = evaluate_methods(methods, manifest, ev, results_dir=Path(results_dir) / codec)
    return {m: per_rate(r) for m, r in rows.items()}


def codec_bdrates(params: Params, results_dir: str | Path = "results/codecs") -> dict[str, Any]:
    """BD-rate of every method against that codec's own input, per codec (`vqe.bdrate.bdrate_table`)."""
    out = {}
    for codec in params.codecs.codecs:
        rd = load_rd(Path(results_dir) / codec / "rd")
        if "input" not in rd:
            raise VQEError(f"{results_dir}/{codec}/rd: no 'input' curve; codecs.methods must include input")
        out[codec] = bdrate_table(rd, anchor="input")
    return out


def write_codec_bdrates(params: Params, path: str | Path = "results/codecs.json",
                        results_dir: str | Path = "results/codecs") -> dict[str, Any]:
    """`results/codecs.json` (DVC metrics): `codec_bdrates`."""
    table = codec_bdrates(params, results_dir)
    write_json(path, table)
    return table


def load_codec_rd(params: Params, results_dir: str | Path = "results/codecs") -> dict[str, dict[str, Any]]:
    """{codec: {method: RD points}} of the codec study, for the figure."""
    return {c: load_rd(Path(results_dir) / c / "rd") for c in params.codecs.codecs}
