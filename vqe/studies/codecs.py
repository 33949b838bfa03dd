"""Codec generalisation (SUPERVEGAN §V, its Fig. 11 on H.265): models trained on H.264 input, tested on
the test clip(s) encoded by another codec (H.265, VP9, AV1) at the same target bitrates.

The encodes are made by the synthesis code itself (same down-scaling, rate calibration and intra
period; only `synth.codec` differs) into `data/codecs/<codec>/`, and scored by `vqe.evaluation.evaluate` into
`results/codecs/<codec>/` exactly like the H.264 rows, so the BD-rate code applies unchanged. Scoring
starts `codecs.skip_frames` into the clip (the models' windows still see the frames before it): x265's
rate control starts every bitrate at nearly the same quantiser, so its first frames look alike at 37.5
and 62.5 kbps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from vqe.config import Params
from vqe.data.span import scored_runs
from vqe.data.synthesise import synthesise
from vqe.evaluation.bdrate import bdrate_table, load_rd
from vqe.evaluation.evaluate import (
    evaluate_methods,
    method_by_name,
    per_rate,
)
from vqe.util.atomic import write_json
from vqe.util.errors import VQEError


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


def codec_runs(params: Params, length: int) -> list[list[int]]:
    """The scored span of the codec study: `codecs.max_frames` consecutive frames from `codecs.skip_frames`."""
    c = params.codecs
    if c.skip_frames >= length - 1:
        raise VQEError(f"codecs.skip_frames: {c.skip_frames} leaves fewer than 2 of the clip's {length} frames")
    stop = length if c.max_frames is None else c.skip_frames + c.max_frames
    return scored_runs(length, None, 2, start=c.skip_frames, stop=stop)


def run_codec(params: Params, codec: str, data_dir: str | Path = "data/codecs",
              results_dir: str | Path = "results/codecs", models_dir: str | Path = "models") -> dict[str, list[dict]]:
    """Encode the test clips with `codec`, evaluate every `codecs.methods` on them; per-rate rows per method."""
    manifest = synthesise(codec_synth(params, codec, Path(data_dir) / codec))
    methods = {m: method_by_name(m, manifest, params.eval, models_dir) for m in params.codecs.methods}
    rows = evaluate_methods(methods, manifest, params.eval, results_dir=Path(results_dir) / codec,
                            runs=lambda length: codec_runs(params, length))
    return {m: per_rate(r) for m, r in rows.items()}


def codec_bdrates(params: Params, results_dir: str | Path = "results/codecs") -> dict[str, Any]:
    """BD-rate of every method against that codec's own input, per codec (`vqe.evaluation.bdrate.bdrate_table`)."""
    out = {}
    for codec in params.codecs.codecs:
        if "input" not in params.codecs.methods:
            raise VQEError("codecs.methods: must include input (the anchor of every BD-rate)")
        rd = load_rd(Path(results_dir) / codec / "rd", params.codecs.methods)
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
    return {c: load_rd(Path(results_dir) / c / "rd", params.codecs.methods) for c in params.codecs.codecs}
