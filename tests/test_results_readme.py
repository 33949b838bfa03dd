"""results/README.md: readings computed from the files, sections only for what exists."""

from __future__ import annotations

import json

from vqe.results_readme import bdrate_reading, build, table1_reading


def test_readings_name_the_best_method_from_the_numbers():
    table = {"input": {"psnr": 25.0, "lpips": 0.43}, "stage_a": {"psnr": 25.5, "lpips": 0.44},
             "nogan": {"psnr": 24.9, "lpips": 0.40}}
    assert table1_reading(table) == ("Best PSNR: Stage A (ours) (25.50 dB); best LPIPS: Ours, NoGAN schedule "
                                     "(Stage A + B) (0.4000); the compressed input has 25.00 dB / 0.4300.")
    bd = {"methods": {"stage_a": {"bd_rate_psnr": -3.0, "bd_rate_vmaf": 1.0, "bd_rate_lpips": None},
                      "nogan": {"bd_rate_psnr": 2.0, "bd_rate_vmaf": 4.0, "bd_rate_lpips": -9.0}}}
    assert bdrate_reading(bd) == ("Largest saving at equal quality — PSNR: Stage A (ours) -3.0 %; "
                                  "VMAF: no method saves bits; LPIPS: Ours, NoGAN schedule (Stage A + B) -9.0 %.")


def test_page_has_only_the_sections_whose_files_exist(tmp_path):
    assert build(tmp_path, "smoke", 30).count("## ") == 0
    (tmp_path / "table1.json").write_text(json.dumps({"input": {"psnr": 25.0, "lpips": 0.43}}))
    (tmp_path / "table1.md").write_text("| the table |\n")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "rd_curves.png").write_bytes(b"png")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stage_a.json").write_text(json.dumps({"seconds": 12.0, "it_per_s": 0.5, "device": "cpu",
                                                                 "threads": 2}))
    page = build(tmp_path, "smoke", 30)
    assert "## Table 1 — test clip at 30 kbps" in page and "| the table |" in page
    assert "![rd_curves.png](figures/rd_curves.png)" in page and "comparison.png" not in page
    assert "| `stage_a` | 12 | 0.50 it/s | cpu, 2 threads |" in page
    assert "BD-rate" not in page and "Speed" not in page
