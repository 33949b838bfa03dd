"""Transfer report: gains elsewhere set against the test-clip gain, from the same scoring code's rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import profile_params

from vqe.evaluation.evaluate import evaluate_methods, method_by_name
from vqe.studies.transfer import ratio, transfer_markdown, transfer_table
from vqe.util.errors import VQEError


def _eval(folder: Path, method: str, rows: dict[str, tuple[float, float]], kbps: float = 62.5) -> None:
    (folder / "eval").mkdir(parents=True, exist_ok=True)
    clips = [{"clip": c, "kbps_target": kbps, "psnr": p, "lpips": lp} for c, (p, lp) in rows.items()]
    clips.append({"clip": next(iter(rows)), "kbps_target": 125.0, "psnr": 99.0, "lpips": 0.0})  # another rate: ignored
    (folder / "eval" / f"{method}.json").write_text(json.dumps({"method": method, "clips": clips}))


@pytest.fixture
def results(tmp_path) -> Path:
    _eval(tmp_path, "input", {"bbb": (26.0, 0.40)})
    _eval(tmp_path, "m", {"bbb": (26.2, 0.38)})  # test: +0.2 dB, LPIPS -0.02
    _eval(tmp_path, "gan", {"bbb": (25.9, 0.41)})  # test: no gain at all
    _eval(tmp_path / "transfer", "input", {"carphone": (30.0, 0.20), "retina": (35.0, 0.10)})
    _eval(tmp_path / "transfer", "m", {"carphone": (30.1, 0.17), "retina": (35.2, 0.09)})
    _eval(tmp_path / "transfer", "gan", {"carphone": (30.0, 0.20), "retina": (35.0, 0.10)})
    _eval(tmp_path / "codecs" / "libx265", "input", {"bbb": (27.0, 0.35)})
    _eval(tmp_path / "codecs" / "libx265", "m", {"bbb": (27.3, 0.36)})
    _eval(tmp_path / "codecs" / "libx265", "gan", {"bbb": (27.0, 0.35)})
    return tmp_path


def _params(methods=("input", "m", "gan")):
    p = profile_params("tiny")
    return replace(p, codecs=replace(p.codecs, methods=list(methods), codecs=["libx265"]))


def test_gains_and_ratios_against_the_test_clip(results):
    table = transfer_table(_params(), results)
    m = table["models"]["m"]
    assert m["test"]["psnr_gain"] == pytest.approx(0.2) and m["test"]["lpips_gain"] == pytest.approx(-0.02)
    car = m["elsewhere"]["val: carphone"]
    assert car["psnr_gain"] == pytest.approx(0.1) and car["psnr_ratio"] == pytest.approx(0.5)
    assert car["lpips_ratio"] == pytest.approx(1.5)  # LPIPS -0.03 against -0.02 on the test clip
    assert m["elsewhere"]["val: retina"]["psnr_ratio"] == pytest.approx(1.0)
    x265 = m["elsewhere"]["libx265: bbb"]
    assert x265["psnr_ratio"] == pytest.approx(1.5) and x265["lpips_ratio"] == pytest.approx(-0.5)
    assert set(table["models"]) == {"m", "gan"}  # `input` is the anchor, not a row
    assert all(g["psnr_ratio"] is None and g["lpips_ratio"] is None
               for g in table["models"]["gan"]["elsewhere"].values())  # no test gain: no ratio


def test_markdown_bolds_and_names_every_shortfall(results):
    md = transfer_markdown(transfer_table(_params(), results))
    assert "| **50%** |" in md and "| 150% |" in md and "| **-50%** |" in md and "| — |" in md
    note = next(line for line in md.splitlines() if line.startswith("- "))
    assert "val: carphone (PSNR)" in note and "libx265: bbb (LPIPS)" in note and "val: retina (LPIPS)" in note
    assert "val: retina (PSNR)" not in note and "val: carphone (LPIPS)" not in note
    assert ratio(0.1, 0.0) is None and ratio(0.1, -0.2) is None and ratio(0.1, 0.4) == pytest.approx(0.25)


def test_a_missing_result_names_its_file(results):
    (results / "transfer" / "eval" / "m.json").unlink()
    with pytest.raises(VQEError, match=r"transfer/eval/m\.json: not found"):
        transfer_table(_params(), results)


def test_evaluation_of_another_split_at_one_bitrate(tmp_path, smoke_manifest):
    params = profile_params("smoke").eval
    rows = evaluate_methods({"input": method_by_name("input", smoke_manifest, params)}, smoke_manifest, params,
                            results_dir=tmp_path, split="val", kbps=params.main_kbps)
    val_clips = {e.clip for e in smoke_manifest.select("val")}
    assert {r["clip"] for r in rows["input"]} == val_clips and {r["kbps_target"] for r in rows["input"]} == {params.main_kbps}
    assert not (tmp_path / "samples").exists()  # the visual samples are the test clip's only
    with pytest.raises(VQEError, match="no val encodes at 1 kbps"):
        evaluate_methods({}, smoke_manifest, params, results_dir=tmp_path, split="val", kbps=1.0)
