"""Figure functions on small inputs: they draw what they are given and return the written path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import vqe.figures
from vqe.figures import (ablation_bars, bitrate_equivalency, codec_rd, gan_vs_nogan, loss_spread,
                         perception_distortion, resilience)


def _live(root: Path, metrics: dict[str, list[tuple[int, float]]]) -> Path:
    for name, rows in metrics.items():
        tsv = root / "plots" / "metrics" / f"{name}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text("step\t" + name.split("/")[-1] + "\n" + "".join(f"{s}\t{v}\n" for s, v in rows))
    return root


def _rd():
    base = pd.DataFrame({"kbps": [40.0, 80.0], "psnr": [24.0, 26.0], "lpips": [0.5, 0.4]})
    return {"input": base, "ours": base.assign(lpips=[0.45, 0.35])}


def test_perception_distortion_and_equivalency_figures(tmp_path):
    assert perception_distortion(_rd(), tmp_path / "pd.png").stat().st_size > 10_000
    table = pd.DataFrame({"method": ["ours", "ours"], "kbps": [40.0, 80.0], "equivalent_kbps": [50.0, float("nan")]})
    assert bitrate_equivalency(table, "lpips", tmp_path / "eq.png").stat().st_size > 10_000


def test_loss_spread_is_the_std_after_the_warmup(tmp_path):
    live = _live(tmp_path, {"train/loss_d": [(10, 5.0), (20, 1.0), (30, 3.0)], "train/loss_adv": [(30, 2.0)]})
    spread = loss_spread(live, after=10)
    assert spread == {"loss_d": pytest.approx(pd.Series([1.0, 3.0]).std())}  # one value: no spread


def test_gan_vs_nogan_places_sub_phases_on_one_time_axis(tmp_path):
    gan = _live(tmp_path / "gan", {"val/lpips": [(2, 0.3), (4, 0.28)], "val/psnr": [(2, 30.0), (4, 30.5)],
                                   "train/loss_d": [(3, 1.0), (4, 1.2)], "train/loss_adv": [(3, 2.0), (4, 2.5)]})
    nogan = tmp_path / "nogan"
    _live(nogan / "pretrain", {"val/lpips": [(5, 0.25)], "val/psnr": [(5, 29.0)], "val/seconds": [(5, 9.0)]})
    _live(nogan / "critic_1", {"train/acc": [(1, 0.6)]})
    _live(nogan / "handoff_1", {"val/lpips": [(1, 0.24)], "val/psnr": [(1, 29.1)], "val/seconds": [(1, 1.0)],
                                "train/loss_d": [(1, 0.5)], "train/loss_adv": [(2, 9.0)]})
    gan_summary = {"seconds": 8.0, "iterations": 4, "val_stage_a": {"lpips": 0.31, "psnr": 30.2}}
    nogan_summary = {"val_start": {"lpips": 0.31, "psnr": 30.2}, "val_pretrain": {"lpips": 0.25, "psnr": 29.0},
                     "seconds": {"pretrain": 10.0, "critic_1": 2.0, "handoff_1": 1.5}}
    out = gan_vs_nogan(gan, gan_summary, nogan, nogan_summary, tmp_path / "cmp.png", gan_warmup=2)
    assert out.stat().st_size > 10_000


def test_validation_times_are_measured_or_estimated(tmp_path):
    from vqe.figures import _validation_over_time

    measured = _live(tmp_path / "m", {"val/lpips": [(5, 0.25)], "val/psnr": [(5, 29.0)], "val/seconds": [(5, 9.0)]})
    assert _validation_over_time(measured, 12.0, None)["seconds"].tolist() == [21.0]
    estimated = _live(tmp_path / "e", {"val/lpips": [(2, 0.3), (4, 0.28)], "val/psnr": [(2, 30.0), (4, 30.5)]})
    assert _validation_over_time(estimated, 0.0, 2.5)["seconds"].tolist() == [5.0, 10.0]


def test_moving_row_finds_the_row_that_changes():
    import numpy as np

    clip = np.zeros((4, 6, 5, 3), np.uint8)
    clip[:, 4, :, 0] = [[0], [90], [10], [200]]  # only row 4 changes over time
    from vqe.figures import moving_row

    assert moving_row(clip) == 4


def test_temporal_profile_strip_and_architecture(tmp_path):
    import numpy as np

    from vqe.config import DiscModel, StageAModel, StageBModel
    from vqe.figures import architecture, frame_strip, temporal_profile
    from vqe.models.generator import Generator

    rng = np.random.default_rng(0)
    clips = {name: rng.integers(0, 255, (5, 24, 32, 3), dtype=np.uint8) for name in ("input", "ours", "gt")}
    assert temporal_profile(clips, 3, tmp_path / "tp.png").stat().st_size > 10_000
    assert frame_strip(clips, tmp_path / "fs.png", crop=(2, 4, 16)).stat().st_size > 10_000
    gen = Generator(StageAModel(align_channels=[8, 8], offset_groups=2, channels=8, blocks=2, growth=8),
                    StageBModel(channels=8, blocks=1), scale=2)
    from dataclasses import asdict

    assert architecture(gen.config, gen.scale, asdict(DiscModel()), tmp_path / "a.png").stat().st_size > 10_000


def _captured(monkeypatch) -> list:
    """Figures handed to `save`, kept open for inspection (and still written)."""
    figs, real = [], vqe.figures.save
    monkeypatch.setattr(vqe.figures, "save", lambda fig, path: (figs.append(fig), real(fig, path))[1])
    return figs


def test_ablation_bars_draw_the_mean_differences_with_spreads_and_the_papers(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    d = lambda m, s: {"mean": m, "spread": s}  # noqa: E731
    summary = {"reference": "full", "seeds": [0, 1], "variants": {
        "full": {"d_psnr": d(0, 0), "d_lpips": d(0, 0), "d_tlp": d(0, 0)},
        "no_a": {"d_psnr": d(-0.2, 0.05), "d_lpips": d(0.01, 0.0), "d_tlp": d(0.002, 0.001)},
        "no_b": {"d_psnr": d(0.3, 0.1), "d_lpips": d(-0.02, 0.01), "d_tlp": d(0.0, 0.0)}}}
    assert ablation_bars(summary, tmp_path / "fig5.png", paper={"no_a": {"d_psnr": -0.2}}).stat().st_size > 10_000
    axes = figs[0].axes
    assert [p.get_width() for p in axes[0].patches] == pytest.approx([-0.2, 0.3])  # the reference has no bar
    assert [p.get_width() for p in axes[1].patches] == pytest.approx([0.01, -0.02])
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["no_a", "no_b"]
    paper = [ln for ln in axes[0].lines if ln.get_label() == "paper (reported)"]
    assert len(paper) == 1 and list(paper[0].get_xdata()) == [-0.2]
    assert not [ln for ln in axes[2].lines if ln.get_label() == "paper (reported)"]


def test_codec_rd_and_resilience_figures(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    rd = _rd()
    assert codec_rd({"libx265": rd, "libsvtav1": rd}, {"input": rd["input"]}, tmp_path / "codecs.png").stat().st_size > 10_000
    ax = figs[0].axes[0]
    assert ax.get_title() == "libx265" and len(ax.lines) == 3  # input, ours, and input on H.264 (grey)
    table = pd.DataFrame({"trained_kbps": ["40", "40", "all", "all"], "test_kbps": [40.0, 80.0] * 2,
                          "psnr": [24.0, 25.0, 24.5, 25.5], "lpips": [0.5, 0.4, 0.45, 0.35]})
    assert resilience(table, tmp_path / "res.png").stat().st_size > 10_000
    lines = figs[1].axes[1].lines
    assert [ln.get_label() for ln in lines] == ["trained at 40 kbps", "all bitrates"]
    assert list(lines[1].get_ydata()) == [0.45, 0.35]
