"""results/README.md: readings computed from the files, sections only for what exists."""

from __future__ import annotations

import json

from vqe.reporting.results_page import bdrate_reading, build, table1_reading


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
    assert "BD-rate" not in page and "Speed" not in page and "Transfer" not in page
    (tmp_path / "transfer.md").write_text("| the transfer table |\n")
    page = build(tmp_path, "smoke", 30)
    assert "## Transfer — val clips and other codecs" in page and "| the transfer table |" in page
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bench_cpu.md").write_text("`vqe bench` on cpu\n\n| model | fps |\n|---|---|\n| a | 2.00 |\n")
    page = build(tmp_path, "smoke", 30)
    assert "## Speed (`vqe bench`, run by hand)" in page and "| a | 2.00 |" in page and "Hand-run benchmark" in page


def test_ablation_codec_and_resilience_sections_read_their_numbers():
    from vqe.reporting.results_page import (
        ablation_section,
        codecs_section,
        resilience_section,
    )

    d = lambda m, s: {"mean": m, "spread": s}  # noqa: E731
    ab = {"reference": "full", "seeds": [0, 1], "variants": {
        "full": {"psnr": d(25.0, 0.1), "lpips": d(0.42, 0.01), "tlp": d(0.006, 0.0),
                 "d_psnr": d(0.0, 0.0), "d_lpips": d(0.0, 0.0), "d_tlp": d(0.0, 0.0)},
        "no_ecbam": {"d_psnr": d(-0.3, 0.1), "d_lpips": d(0.001, 0.002), "d_tlp": d(0.0, 0.0)}}}
    page = "\n".join(ablation_section(ab, {"no_ecbam": {"d_psnr": -0.2}}))
    assert "| no_ecbam | -0.300 ± 0.100 | +0.0010 ± 0.0020 | +0.0000 ± 0.0000 | PSNR -0.2 |" in page
    assert "visible at the table's precision: no_ecbam PSNR -0.300." in page  # LPIPS +0.001 is within its spread
    assert "PSNR 25.00 dB, LPIPS 0.4200" in page
    bd = {"libx265": {"nogan_fast": {"bd_rate_psnr": 3.0, "bd_rate_vmaf": None, "bd_rate_lpips": -20.5}}}
    assert "| libx265 | Fast NoGAN restorer (MobileNetV3 U-Net) | +3.0 % | — | -20.5 % |" in "\n".join(codecs_section(bd))
    res = {"trained_37_5k": {"lpips": {"mean": 0.40, "37_5k": 0.45, "125k": 0.35}},
           "all": {"lpips": {"mean": 0.38, "37_5k": 0.43, "125k": 0.33}}}
    page = "\n".join(resilience_section(res))
    assert "| trained on | 37.5k | 125k | mean |" in page and "| 37.5 kbps only | 0.4500 | 0.3500 | 0.4000 |" in page
    assert "Mean LPIPS spans 0.3800 (all bitrates) to 0.4000 (37.5 kbps only)" in page


def test_run_line_names_the_data_and_hardware(tmp_path):
    from vqe.reporting.results_page import run_line

    assert run_line(tmp_path) is None
    (tmp_path / "train").mkdir()
    (tmp_path / "synthesis.json").write_text(json.dumps({"clips": 3, "frames": 22, "encodes": 6, "test": {
        "a": {"kbps_target": 30.0}, "b": {"kbps_target": 62.5}}}))
    (tmp_path / "train" / "stage_a.json").write_text(json.dumps({"device": "cpu", "threads": 2}))
    assert run_line(tmp_path) == ("Data: 3 clips (22 frames, 6 encodes), test bitrates 30, 62.5 kbps. "
                                  "Hardware: cpu, 2 threads (from the training summaries).")


def test_scaling_section_reports_each_recipes_best_validation_point():
    from vqe.reporting.results_page import scaling_section

    point = lambda s, v, t: {"iteration": s, "seconds": 10.0 * s, "psnr_gain": v, "lpips_gain": -v / 10,  # noqa: E731
                             "test_psnr_gain": t, "test_lpips_gain": -t / 10}
    study = {"kbps": 62.5, "span": {"segments": 6, "segment_frames": 2}, "recipes": {
        "paper": {"parameters": 120000, "it_per_s": 1.5, "curve": [point(1, 0.01, 0.02), point(2, 0.03, 0.01)]},
        "stack": {"parameters": 280000, "it_per_s": 2.25, "curve": [point(1, 0.10, 0.12), point(2, 0.05, 0.2)]}}}
    page = "\n".join(scaling_section(study))
    assert "Stage A recipes at 62.5 kbps" in page and "6 runs of 2 frames" in page
    # paper: its best val point is the 2nd (0.03); stack: the 1st (0.10), whose test gain is 0.12, not the end's 0.2
    assert "| paper | 120,000 | 1.50 | 20 | +0.030 | -0.0030 | +0.010 | -0.0010 | +0.010 |" in page
    assert "| stack | 280,000 | 2.25 | 10 | +0.100 | -0.0100 | +0.120 | -0.0120 | +0.200 |" in page


def test_nogan_section_reads_the_claim_and_its_verdict():
    from vqe.reporting.results_page import nogan_section

    claim = {"gan_final_val_lpips": 0.28, "nogan_final_val_lpips": 0.24, "gan_final_val_psnr": 30.5,
             "nogan_final_val_psnr": 29.1, "gan_seconds_to_reach": 8.0, "nogan_seconds_to_reach": 9.0,
             "gan_seconds": 8.0, "nogan_seconds": 13.0, "holds": False}
    page = "\n".join(nogan_section(claim))
    assert "| phase-2 GAN | 0.2800 | 30.50 | 8 | 8 |" in page and "| NoGAN | 0.2400 | 29.10 | 13 | 9 |" in page
    assert "the claim does not hold: the GAN got there first" in page
    never = "\n".join(nogan_section({**claim, "nogan_seconds_to_reach": None, "holds": None}))
    assert "| NoGAN | 0.2400 | 29.10 | 13 | never |" in never and "NoGAN never reached it" in never
    assert "claim holds: NoGAN got there first" in "\n".join(nogan_section({**claim, "holds": True}))
