import json
import math

import pytest

from vqe.evaluation.evaluate import load_evals, per_rate, write_eval
from vqe.evaluation.report import (
    TABLE1_KEYS,
    build_table1,
    describe_span,
    table1_markdown,
    write_table1,
)
from vqe.util.errors import VQEError

SPAN = [0, 1, 2, 3, 10, 11, 12, 13]


def _row(clip: str, target: float, kbps: float, psnr: float, frames: list[int] = SPAN) -> dict:
    metrics = {k: 0.5 for k in ("psnr_y", "ssim", "ms_ssim", "lpips", "tpsnr", "tssim", "tof", "tlp", "vmaf", "niqe")}
    return {"clip": clip, "rate_id": f"x_{target:g}k", "kbps_target": target, "kbps": kbps, "bpp": kbps / 100,
            "kbps_scored": kbps * 1.5, **metrics, "psnr": psnr, "frames_scored": frames}


def test_per_rate_averages_clips_and_sorts_by_rate():
    rows = [_row("a", 60, 58.0, 30.0), _row("b", 60, 62.0, 32.0), _row("a", 30, 29.0, 25.0)]
    merged = per_rate(rows)
    assert [r["kbps_target"] for r in merged] == [30, 60]
    assert merged[1]["psnr"] == 31.0 and merged[1]["kbps"] == 60.0 and merged[1]["kbps_scored"] == 90.0
    assert merged[1]["frames_scored"] == {"a": SPAN, "b": SPAN}


def test_eval_files_and_rd_csv(tmp_path):
    write_eval("input", [_row("a", 30, 29.0, 25.0), _row("a", 60, 58.0, 30.0)], tmp_path)
    assert (tmp_path / "rd" / "input.csv").read_text().splitlines() == [
        "kbps,kbps_scored,bpp,psnr,ssim,lpips,vmaf", "29.0,43.5,0.29,25.0,0.5,0.5,0.5", "58.0,87.0,0.58,30.0,0.5,0.5,0.5"]
    assert load_evals(["input"], tmp_path)["input"]["rates"][0]["psnr"] == 25.0
    assert load_evals(["input"], tmp_path)["input"]["clips"][0]["frames_scored"] == SPAN


def test_methods_come_from_params_not_from_the_files_present(tmp_path):
    write_eval("input", [_row("a", 30, 29.0, 25.0)], tmp_path)
    write_eval("stale", [_row("a", 30, 29.0, 99.0)], tmp_path)  # a method no longer configured
    assert list(load_evals(["input"], tmp_path)) == ["input"]
    with pytest.raises(VQEError, match="stage_a.json: not found; run the evaluate@stage_a"):
        load_evals(["input", "stage_a"], tmp_path)


def test_table1_takes_the_main_bitrate_and_quotes_the_paper_separately(tmp_path):
    write_eval("lanczos", [_row("a", 30, 29.0, 26.0), _row("a", 60, 58.0, 31.0)], tmp_path)
    write_eval("input", [_row("a", 30, 29.0, 25.0), _row("a", 60, 58.0, 30.0)], tmp_path)
    table = write_table1(tmp_path, 60, "tiny", ["input", "lanczos"], {"a": 20})
    assert list(table) == ["input", "lanczos"]  # the order of eval.methods
    assert table["input"]["psnr"] == 30.0 and set(table["input"]) == {*TABLE1_KEYS, "frames_scored"}
    saved = json.loads((tmp_path / "table1.json").read_text())
    assert saved["span"] == {"frames_scored": {"a": SPAN}}
    assert saved["input"] == {k: v for k, v in table["input"].items() if k != "frames_scored"}
    md = (tmp_path / "table1.md").read_text()
    assert "Scored span: a: frames 0–3, 10–13 (8 of 20)" in md
    assert "| H.264 compressed (bicubic up-scaled) | 30.00 |" in md
    assert "| 0.50 | 58.0 | 87.0 |" in md  # the stream's bitrate, then the scored frames' own
    assert "25.1 / 0.613 / 0.412" in md  # the paper's own row, in its labelled reference column
    assert md.count("25.1 / 0.613") == 1


def test_table1_errors(tmp_path):
    with pytest.raises(VQEError, match="input.json: not found"):
        build_table1(tmp_path, 60, ["input"])
    write_eval("input", [_row("a", 30, 29.0, 25.0)], tmp_path)
    with pytest.raises(VQEError, match="no rate point at 60"):
        build_table1(tmp_path, 60, ["input"])
    write_eval("other", [_row("a", 30, 29.0, 25.0, frames=[0, 1, 2, 3])], tmp_path)
    with pytest.raises(VQEError, match="scored on different frames"):
        build_table1(tmp_path, 30, ["input", "other"])


def test_markdown_handles_infinite_psnr_and_undefined_niqe():
    table = {"input": {k: 1.0 for k in TABLE1_KEYS} | {"psnr": math.inf, "niqe": math.nan, "frames_scored": {"a": [4]}}}
    md = table1_markdown(table, 60, "smoke")
    assert "| inf |" in md and "| 1.00 | — | 1.0 | 1.0 |" in md  # VMAF, NIQE undefined, the two bitrates


def test_table1_marks_niqe_not_scored_in_an_older_evaluation(tmp_path):
    old = {k: v for k, v in _row("a", 60, 58.0, 30.0).items() if k != "niqe"}
    write_eval("input", [old], tmp_path)
    write_eval("lanczos", [_row("a", 60, 58.0, 31.0)], tmp_path)
    table = write_table1(tmp_path, 60, "tiny", ["input", "lanczos"])
    assert table["input"]["niqe"] is None and table["lanczos"]["niqe"] == 0.5
    md = (tmp_path / "table1.md").read_text()
    assert "| n/s | 58.0 |" in md and "dvc repro` scores them again: H.264 compressed (bicubic up-scaled)." in md
    path = tmp_path / "eval" / "input.json"
    data = json.loads(path.read_text())
    del data["rates"][0]["lpips"]
    path.write_text(json.dumps(data))
    with pytest.raises(VQEError, match="input.json: no lpips; rerun its evaluation"):
        build_table1(tmp_path, 60, ["input"])


def test_table1_json_writes_undefined_niqe_as_null(tmp_path):
    write_eval("input", [_row("a", 60, 58.0, 30.0) | {"niqe": math.nan}], tmp_path)
    write_table1(tmp_path, 60, "smoke", ["input"])
    assert json.loads((tmp_path / "table1.json").read_text())["input"]["niqe"] is None


def test_span_is_described_as_runs():
    assert describe_span({"bbb": [0, 1, 2, 3, 4, 5, 6, 7, 25, 26, 131]}, {"bbb": 132}) == \
        "bbb: frames 0–7, 25–26, 131 (11 of 132)"


def test_gains_against_the_compressed_input_at_every_rate(tmp_path):
    from vqe.evaluation.report import write_gains

    write_eval("input", [_row("a", 30, 29.0, 25.0), _row("a", 60, 58.0, 30.0)], tmp_path)
    better = [_row("a", 30, 29.0, 25.75), _row("a", 60, 58.0, 30.5)]
    better[1]["lpips"] = 0.4
    write_eval("stage_a", better, tmp_path)
    gains = write_gains(tmp_path, ["input", "stage_a"])
    assert list(gains) == ["stage_a"]
    assert [g["d_psnr"] for g in gains["stage_a"]] == [0.75, 0.5]
    assert gains["stage_a"][1]["d_lpips"] == pytest.approx(-0.1)
    assert "| Stage A (ours) | 60 | +0.500 |" in (tmp_path / "gains.md").read_text()
    with pytest.raises(VQEError, match="reference method 'input' is not one of"):
        write_gains(tmp_path, ["stage_a"])


def test_temporal_table_reports_the_gap_against_the_input(tmp_path):
    from vqe.evaluation.report import write_temporal

    table = {"input": {"psnr": 25.0, "tpsnr": 33.0, "tssim": 0.97, "tof": 0.4, "tlp": 0.006},
             "gan_evh": {"psnr": 25.5, "tpsnr": 33.2, "tssim": 0.96, "tof": 0.5, "tlp": 0.007}}
    text = write_temporal(tmp_path, table, 62.5)
    # input gap +8.0; ours +7.7: 0.3 dB less stable than the input
    assert "| Ours (GAN-EVH: Stage A + B) | 25.50 | 33.20 | +7.70 | -0.300 |" in text
    assert (tmp_path / "temporal.md").read_text() == text


def test_stage_dissection_lists_each_stage_at_each_rate(tmp_path):
    from vqe.evaluation.report import write_dissection

    for method, psnr in (("input", 25.0), ("stage_a", 25.5), ("gan_evh", 25.3)):
        write_eval(method, [_row("a", 30, 29.0, psnr - 2), _row("a", 60, 58.0, psnr)], tmp_path)
    lines = [ln for ln in write_dissection(tmp_path, ["input", "lanczos", "stage_a", "gan_evh"]).splitlines() if ln.startswith("| 6") or ln.startswith("| 3")]
    assert [ln.split(" | ")[:3] for ln in lines] == [
        ["| 30", "H.264 compressed (bicubic up-scaled)", "23.00"], ["| 30", "Stage A (ours)", "23.50"],
        ["| 30", "Ours (GAN-EVH: Stage A + B)", "23.30"], ["| 60", "H.264 compressed (bicubic up-scaled)", "25.00"],
        ["| 60", "Stage A (ours)", "25.50"], ["| 60", "Ours (GAN-EVH: Stage A + B)", "25.30"]]


def test_markdown_names_released_weights_and_quotes_the_paper_only_for_its_rows():
    row = {k: 1.0 for k in TABLE1_KEYS} | {"frames_scored": {"a": [4]}}
    md = table1_markdown({"gan_evh": row, "gan_evh_release": row}, 60, "tiny")
    lines = [line for line in md.splitlines() if line.startswith("| Ours")]
    assert lines[0].startswith("| Ours (GAN-EVH: Stage A + B) |") and lines[0].endswith("| 27.5 / 0.727 / 0.185 |")
    assert lines[1].startswith("| Ours (GAN-EVH: Stage A + B), released weights |") and lines[1].endswith("| — |")


def _rated(psnr: float, lpips: float) -> dict:
    row = _row("a", 60, 58.0, psnr)
    row["lpips"] = lpips
    return row


def test_table1_vs_paper_puts_each_sides_delta_and_ranks_side_by_side(tmp_path):
    for method, psnr, lpips in (("input", 26.0, 0.40), ("edvr", 26.5, 0.39), ("gan_evh", 26.1, 0.30),
                                ("esrgan_dncnn", 25.0, 0.33)):
        write_eval(method, [_rated(psnr, lpips)], tmp_path)
    write_table1(tmp_path, 60, "tiny", ["input", "edvr", "gan_evh", "esrgan_dncnn"])
    md = (tmp_path / "table1_vs_paper.md").read_text()
    # the paper: EDVR 28.1 / 0.300 against H.264 25.1 / 0.412 -> +3.0 dB, -0.112; ours +0.5 dB, -0.01
    assert "| EDVR (retrained) | EDVR (retrained, x2 + denoising) | +3.0 | +0.500 | -0.112 | -0.0100 | 1 / 1 | 3 / 3 |" in md
    # ESRGAN+Denoise: the paper's PSNR rank 3 of these 3, LPIPS rank 2 (0.254 against GAN-EVH's 0.185); ours 3 and 2
    assert "| ESRGAN+Denoise | DnCNN + ESRGAN x2 (retrained) | +0.7 | -1.000 | -0.158 | -0.0700 | 3 / 3 | 2 / 2 |" in md
    assert "| MFQE 2.0 | `mfqe2`: not built yet | +2.2 | — |" in md
    assert "- Best PSNR: the paper's EDVR (retrained), ours EDVR (retrained, x2 + denoising) (the same method)." in md
    assert "- Best LPIPS: the paper's Ours (GAN-EVH), ours Ours (GAN-EVH: Stage A + B) (the same method)." in md


def test_table1_states_every_baselines_training_time_beside_stage_as(tmp_path):
    for method in ("input", "stage_a", "galteri"):
        write_eval(method, [_rated(26.0, 0.4)], tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stage_a.json").write_text(json.dumps({"seconds": 392.6}))
    (tmp_path / "train" / "galteri.json").write_text(json.dumps({"seconds": 401.2}))
    write_table1(tmp_path, 60, "tiny", ["input", "stage_a", "galteri"])
    md = (tmp_path / "table1.md").read_text()
    assert ("Budgets: every baseline row was retrained on our data, its iterations sized by "
            "`benchmarks/baseline_speed.py` to train about as long as Stage A; the wall times they took: Stage A 393 s; "
            "Galteri et al. (seed 002, retrained) 401 s.") in md
