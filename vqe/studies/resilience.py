"""Training-bitrate resilience (SUPERVEGAN §V-F, its Fig. 13): does the bitrate a model was trained at
matter when it is tested at another?

The fast restorer (`nogan_fast`: its architecture and its whole NoGAN schedule, unchanged) is trained
on the encodes of one bitrate only, for each of `resilience.train_at` (lowest, highest, or a bitrate),
and evaluated at every test bitrate like any other row, by its own stage (notebook 02b with
`models_dir` models/resilience, `results_dir` results/resilience/<train_at>/). The `nogan_fast` row itself, trained on all
bitrates with the same schedule, is the reference.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from vqe.config import Params
from vqe.data.manifest import Manifest
from vqe.data.synthesise import rate_points
from vqe.train.nogan import train_nogan_fast
from vqe.util.atomic import write_json
from vqe.util.errors import VQEError


def method_name(which: str) -> str:
    return f"fast_{which}"


def train_rate_id(params: Params, which: str, manifest: Manifest) -> str:
    """The rate id of the training encodes at the bitrate `which` names, checked to exist."""
    kbps = params.resilience.kbps(which, params.synth.bitrates_kbps)
    rate_id = {s.kbps: r for r, s in rate_points(params.synth, "train")}.get(kbps)
    if rate_id is None or not manifest.select("train", rate_id):
        raise VQEError(f"resilience.train_at: no training encodes at {kbps:g} kbps in {manifest.root} "
                       "(training data is encoded at a CRF when synth.train_crf is set; set it to null)")
    return rate_id


def train_rate(params: Params, which: str, models_dir: str | Path = "models/resilience",
               results_dir: str | Path = "results/resilience", run_dir: str | Path = "checkpoints/resilience",
               progress: bool = True) -> dict[str, Any]:
    """Train the fast restorer on the encodes of one bitrate only; returns its training summary."""
    manifest = Manifest.load(params.synth.out_dir)
    name, rate_id = method_name(which), train_rate_id(params, which, manifest)
    fast = params.nogan_fast
    p = replace(params, nogan_fast=replace(fast, train=replace(fast.train, rate_ids=[rate_id])))
    summary = train_nogan_fast(p, model_path=Path(models_dir) / f"{name}.pt", run_dir=Path(run_dir) / name,
                               live_dir=None, summary_path=Path(results_dir) / which / "train.json", progress=progress)
    return {"train_rate_id": rate_id, **summary}


def resilience_table(params: Params, results_dir: str | Path = "results/resilience",
                     reference: str | Path = "results/eval/nogan_fast.json",
                     metrics: tuple[str, ...] = ("psnr", "lpips", "vmaf")) -> pd.DataFrame:
    """One row per (training bitrate, test bitrate): the metrics; `all` is the reference model."""
    sources = {f"{params.resilience.kbps(w, params.synth.bitrates_kbps):g}":
               Path(results_dir) / w / "eval" / f"{method_name(w)}.json" for w in params.resilience.train_at}
    sources["all"] = Path(reference)
    rows = []
    for trained, path in sources.items():
        if not path.is_file():
            raise VQEError(f"{path}: evaluation not found; run the resilience and evaluate stages")
        for r in json.loads(path.read_text())["rates"]:
            rows.append({"trained_kbps": trained, "test_kbps": r["kbps_target"], **{m: r[m] for m in metrics}})
    return pd.DataFrame(rows)


def write_resilience(table: pd.DataFrame, path: str | Path = "results/resilience.json") -> dict[str, Any]:
    """`results/resilience.json` (DVC metrics): per training bitrate, each metric at every test bitrate
    and its mean over them (keys use `_` for the decimal point, which DVC would read as nesting)."""
    out: dict[str, Any] = {}
    for trained, rows in table.groupby("trained_kbps", sort=False):
        key = "all" if trained == "all" else f"trained_{trained}k".replace(".", "_")
        metrics = [c for c in rows.columns if c not in ("trained_kbps", "test_kbps")]
        out[key] = {m: {"mean": float(rows[m].mean()),
                        **{f"{t:g}k".replace(".", "_"): float(v) for t, v in zip(rows["test_kbps"], rows[m])}}
                    for m in metrics}
    write_json(path, out)
    return out
