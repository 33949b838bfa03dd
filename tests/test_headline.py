"""results/metrics.json: the headline `dvc exp show` compares runs by, computed from the result files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vqe.reporting.headline import headline, pipeline_seconds
from vqe.util.errors import VQEError

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def results(tmp_path):
    _write(tmp_path / "table1.json", {"input": {"psnr": 26.48181, "lpips": 0.35512, "vmaf": 40.0},
                                      "ours": {"psnr": 26.6, "lpips": 0.3}, "span": {"frames_scored": {}}})
    _write(tmp_path / "bdrate.json", {"anchor": "input", "methods": {"ours": {"bd_rate_psnr": -0.93, "bd_rate_lpips": 0.36,
                                                                               "bd_rate_vmaf": 0.5}}})
    _write(tmp_path / "ablations.json", {"variants": {
        "full": {"d_psnr": {"mean": 0.0}, "d_lpips": {"mean": 0.0}, "d_tlp": {"mean": 0.0}},
        "no_stage_b": {"d_psnr": {"mean": 0.091234, "spread": 0.01}, "d_lpips": {"mean": 0.05}, "d_tlp": {"mean": 2e-4}}}})
    for name, seconds in (("a", 60.0), ("b", 30.0)):
        _write(tmp_path / "notebooks" / f"{name}.ipynb", {"metadata": {"papermill": {"duration": seconds}}, "cells": []})
    _write(tmp_path / "notebooks" / "c.ipynb", {"metadata": {}, "cells": []})  # never executed: no duration
    return tmp_path


def test_headline_keeps_the_main_rate_bdrates_ablation_deltas_and_wall_time(results):
    h = headline(results)
    assert h["table1"] == {"input": {"psnr": 26.4818, "lpips": 0.3551}, "ours": {"psnr": 26.6, "lpips": 0.3}}
    assert h["bdrate"] == {"ours": {"psnr": -0.93, "lpips": 0.36}}
    assert h["ablation"] == {"no_stage_b": {"d_psnr": 0.0912, "d_lpips": 0.05, "d_tlp": 0.0002}}
    assert h["minutes"] == 1.5 and pipeline_seconds(results / "notebooks") == 90.0


def test_a_missing_result_is_named(results):
    (results / "bdrate.json").unlink()
    with pytest.raises(VQEError, match="bdrate.json: missing"):
        headline(results)


def test_the_committed_headline_fits_a_screen():
    """At most 100 metric columns in `dvc exp show`: results/metrics.json is the only metrics file."""
    data = json.loads((ROOT / "results" / "metrics.json").read_text())

    def leaves(d) -> int:
        return sum(leaves(v) for v in d.values()) if isinstance(d, dict) else 1

    assert leaves(data) <= 100
    assert all(isinstance(v, float) and math.isfinite(v) for row in data["table1"].values() for v in row.values())
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = [m for s in stages.values() for m in s.get("do", s).get("metrics", [])]
    assert [next(iter(m)) if isinstance(m, dict) else m for m in declared] == ["results/metrics.json"]
