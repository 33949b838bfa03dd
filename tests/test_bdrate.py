"""BD-rate against a published worked example and curves with a known answer; bitrate equivalency."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vqe.evaluation.bdrate import (
    bd_rate,
    bdrate_table,
    equivalency_table,
    equivalent_kbps,
    load_rd,
    overlap,
)
from vqe.util.errors import VQEError

# JCTVC-E137 (HEVC common test conditions' BD-rate sheet), as used by Netflix's VMAF tests:
# -0.465215420752807 % with PCHIP.
E137_ANCHOR = ([108048.8736, 61279.976, 33905.6656, 18883.6928], [43.6471, 40.3953, 37.247, 34.2911])
E137_TEST = ([108061.2784, 61299.9936, 33928.7472, 18910.912], [43.6768, 40.4232, 37.2761, 34.3147])


def test_bd_rate_reproduces_the_published_jctvc_e137_example():
    assert bd_rate(*E137_ANCHOR, *E137_TEST) == pytest.approx(-0.465215420752807, abs=1e-9)
    assert bd_rate(*E137_ANCHOR, *E137_TEST, method="akima") == pytest.approx(-0.4651, abs=1e-3)


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_same_quality_at_80_percent_of_the_rate_is_minus_20_percent(method):
    rates = np.array([40.0, 60.0, 90.0, 130.0])
    psnr = np.array([24.0, 25.3, 26.1, 26.9])
    assert bd_rate(rates, psnr, 0.8 * rates, psnr, method=method) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(rates, psnr, 1.25 * rates, psnr, method=method) == pytest.approx(25.0, abs=1e-9)


def test_lower_is_better_metrics_are_oriented():
    rates = np.array([40.0, 60.0, 90.0, 130.0])
    lpips = np.array([0.54, 0.43, 0.36, 0.33])
    # a method reaching the anchor's LPIPS at half the rate saves 50 %
    assert bd_rate(rates, lpips, 0.5 * rates, lpips, metric="lpips") == pytest.approx(-50.0, abs=1e-9)
    # on a straight line in log-rate, 0.01 LPIPS better everywhere is a saving, not a cost
    line = 0.9 - 0.1 * np.log2(rates)
    assert bd_rate(rates, line, rates, line - 0.01, metric="lpips") < 0


def test_curves_without_common_quality_give_nan():
    rates = [40.0, 60.0, 90.0]
    assert math.isnan(bd_rate(rates, [20.0, 21.0, 22.0], rates, [30.0, 31.0, 32.0]))
    assert overlap([20, 22], [30, 32]) == 0 and overlap([0, 2], [1, 3]) == pytest.approx(1 / 3)


def test_curves_whose_quality_does_not_rise_give_nan():
    kbps, rising = [37.5, 62.5, 125.0], [27.0, 28.0, 29.5]
    assert math.isnan(bd_rate(kbps, [27.4, 27.4, 27.6], kbps, rising))  # a flat step (seen: x265's first frames)
    assert math.isnan(bd_rate(kbps, rising, kbps, [28.0, 27.5, 29.0]))
    assert bd_rate(kbps, rising, kbps, rising) == pytest.approx(0.0, abs=1e-9)


def test_equivalent_kbps_inverts_the_anchor_curve_without_extrapolating():
    rates = np.array([25.0, 50.0, 100.0, 200.0])
    psnr = 10 * np.log10(rates)  # linear in log-rate: PCHIP is exact
    eq = equivalent_kbps(rates, psnr, [10 * np.log10(70.0), 10 * np.log10(300.0), 10 * np.log10(30.0)])
    assert eq[0] == pytest.approx(70.0, rel=1e-9) and math.isnan(eq[1]) and eq[2] == pytest.approx(30.0, rel=1e-9)
    with pytest.raises(ValueError, match="strictly"):
        equivalent_kbps(rates, [30.0, 29.0, 31.0, 32.0], [30.0])


def test_tables_from_rd_files(tmp_path):
    rates = [40.0, 60.0, 90.0, 130.0]
    base = pd.DataFrame({"kbps": [2 * r for r in rates], "kbps_scored": rates, "bpp": 0.0, "psnr": [24.0, 25.0, 26.0, 27.0], "ssim": 0.0,
                         "lpips": [0.54, 0.43, 0.36, 0.33], "vmaf": [13.0, 29.0, 42.0, 51.0]})
    better = base.assign(kbps_scored=[0.8 * r for r in rates])  # BD-rate pairs quality with kbps_scored
    base.to_csv(tmp_path / "input.csv", index=False)
    better.to_csv(tmp_path / "ours.csv", index=False)
    rd = load_rd(tmp_path, ["input", "ours"])
    assert list(rd) == ["input", "ours"]
    with pytest.raises(VQEError, match="missing.csv: no RD points"):
        load_rd(tmp_path, ["input", "missing"])
    table = bdrate_table(rd)
    assert list(table) == ["ours"]
    for metric in ("psnr", "vmaf", "lpips"):
        assert table["ours"][f"bd_rate_{metric}"] == pytest.approx(-20.0, abs=1e-9)
        assert table["ours"][f"overlap_{metric}"] == pytest.approx(1.0)
    eq = equivalency_table(rd, metric="psnr")
    assert list(eq["method"]) == ["ours"] * 4
    # ours at 0.8 r reaches the anchor's quality at r: the plain stream needs 1.25x the bits
    assert eq["ratio"].to_numpy() == pytest.approx([1.25] * 4)
    with pytest.raises(ValueError, match="anchor"):
        bdrate_table(rd, anchor="missing")
    # an anchor whose quality does not rise with the rate has no equivalency: empty, not guessed
    base.assign(psnr=[24.0, 23.0, 26.0, 27.0]).to_csv(tmp_path / "input.csv", index=False)
    with pytest.warns(UserWarning, match="psnr"):
        eq = equivalency_table(load_rd(tmp_path, ["input", "ours"]), metric="psnr")
    assert eq["equivalent_kbps"].isna().all()
