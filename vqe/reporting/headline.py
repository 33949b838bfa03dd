"""The headline metrics of a run, the columns `dvc exp show` compares runs by (`results/metrics.json`, the
pipeline's only DVC metrics file): Table 1's PSNR and LPIPS at the main rate for every row, every row's BD-rate
(PSNR and LPIPS), the ablation deltas and the pipeline's wall time. Everything else stays in its own file
(training summaries, the full Table 1), readable with `dvc plots` or by opening it.

    python -m vqe.reporting.headline   (stage `headline` of dvc.yaml)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vqe.util.atomic import write_json
from vqe.util.errors import VQEError
from vqe.util.notebook import output_folder


def _load(path: Path) -> Any:
    if not path.is_file():
        raise VQEError(f"{path}: missing; run the stage that writes it first (dvc repro)")
    return json.loads(path.read_text())


def stage_seconds(notebooks: Path) -> dict[str, float]:
    """{executed notebook name: seconds} of the notebooks in `notebooks` (papermill records each one's duration;
    a notebook without one is left out), in the notebooks' order."""
    times = {}
    for path in sorted(Path(notebooks).glob("*.ipynb")):
        duration = json.loads(path.read_text())["metadata"].get("papermill", {}).get("duration")
        if duration is not None:
            times[path.stem] = float(duration)
    return times


def pipeline_seconds(notebooks: Path) -> float:
    """The sum of the executed notebooks' durations: each stage as last run."""
    return sum(stage_seconds(notebooks).values())


def headline(results: str | Path = "results", notebooks: str | Path | None = None) -> dict[str, Any]:
    """{table1: {row: {psnr, lpips}}, bdrate: {row: {psnr, lpips}}, ablation: {variant: {d_psnr, d_lpips, d_tlp}},
    minutes}: rounded so that `dvc exp show` stays readable; `notebooks`: the executed notebooks (default
    `<results>/notebooks`)."""
    results = Path(results)
    table = _load(results / "table1.json")
    bd = _load(results / "bdrate.json")["methods"]
    ablation = _load(results / "ablations.json")["variants"]
    r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
    return {
        "table1": {row: {"psnr": r(v["psnr"]), "lpips": r(v["lpips"])} for row, v in table.items() if row != "span"},
        "bdrate": {row: {"psnr": r(v["bd_rate_psnr"]), "lpips": r(v["bd_rate_lpips"])} for row, v in bd.items()},
        "ablation": {name: {k: r(v[k]["mean"]) for k in ("d_psnr", "d_lpips", "d_tlp")}
                     for name, v in ablation.items() if name != "full"},
        "minutes": round(pipeline_seconds(Path(notebooks) if notebooks else results / "notebooks") / 60, 1),
    }


def main() -> None:
    write_json(Path("results/metrics.json"), headline("results", output_folder("params.yaml")))


if __name__ == "__main__":
    main()
