"""Figure functions on small inputs: each draws exactly the data it is given, read back from the
matplotlib artists (lines, bars, images, texts) of the figure it hands to `save`, and writes the PNG."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import FancyBboxPatch, Rectangle
from matplotlib.text import Annotation

import vqe.reporting.curves
import vqe.reporting.figures
from vqe.evaluation.bdrate import RATE
from vqe.evaluation.report import display_name
from vqe.models.stage_b import Generator
from vqe.reporting.curves import (
    gan_nogan_curves,
    gan_vs_nogan,
    loss_spread,
    nogan_time_to_gan_lpips,
)
from vqe.reporting.figures import (
    RD_PANELS,
    ablation_bars,
    architecture,
    bitrate_equivalency,
    codec_rd,
    frame_strip,
    moving_row,
    perception_distortion,
    rd_curves,
    resilience,
    temporal_profile,
)


def _live(root: Path, metrics: dict[str, list[tuple[int, float]]]) -> Path:
    for name, rows in metrics.items():
        tsv = root / "plots" / "metrics" / f"{name}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text("step\t" + name.split("/")[-1] + "\n" + "".join(f"{s}\t{v}\n" for s, v in rows))
    return root


def _rd():
    # the scored frames' bitrate (RATE) differs from the whole stream's (kbps): the figures must use RATE
    base = pd.DataFrame({"kbps": [41.0, 83.0], RATE: [40.0, 80.0], "psnr": [24.0, 26.0], "ssim": [0.7, 0.8],
                         "lpips": [0.5, 0.4], "vmaf": [30.0, 50.0]})
    return {"input": base, "ours": base.assign(psnr=[24.5, 26.5], lpips=[0.45, 0.35])}


def _captured(monkeypatch) -> list:
    """Figures handed to `save`, kept open for inspection (and still written)."""
    figs, real = [], vqe.reporting.figures.save
    for module in (vqe.reporting.figures, vqe.reporting.curves):
        monkeypatch.setattr(module, "save", lambda fig, path: (figs.append(fig), real(fig, path))[1])
    return figs


def _data(line) -> tuple[list[float], list[float]]:
    return [float(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()]


def test_perception_distortion_plots_rmse_against_lpips(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    rmse = {"input": [16.0, 8.0], "gan_evh": [12.0, 6.0]}
    lpips = {"input": [0.5, 0.4], "gan_evh": [0.3, 0.2]}
    # PSNR = 20 log10(255 / RMSE): the figure has to turn these back into the RMSEs above
    rd = {m: pd.DataFrame({RATE: [40.0, 80.0], "psnr": [20 * math.log10(255 / r) for r in rmse[m]], "lpips": lpips[m]})
          for m in rmse}
    assert perception_distortion(rd, tmp_path / "pd.png").stat().st_size > 10_000
    (ax,) = figs[0].axes
    names = [display_name("input"), display_name("gan_evh")]
    assert [ln.get_label() for ln in ax.lines] == names
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    for line, method in zip(ax.lines, rmse):
        x, y = _data(line)
        assert x == pytest.approx(rmse[method], rel=1e-12) and y == lpips[method]
    assert ax.get_xlabel().startswith("RMSE (0-255)") and ax.get_ylabel().startswith("LPIPS")


def test_bitrate_equivalency_draws_each_method_and_the_no_change_diagonal(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    table = pd.DataFrame({"method": ["gan_evh", "gan_evh", "nogan", "nogan"], "kbps": [40.0, 80.0, 40.0, 80.0],
                          "equivalent_kbps": [50.0, float("nan"), 45.0, 95.0]})
    assert bitrate_equivalency(table, "lpips", tmp_path / "eq.png").stat().st_size > 10_000
    (ax,) = figs[0].axes
    gan, nogan, diagonal = ax.lines
    assert (gan.get_label(), nogan.get_label()) == (display_name("gan_evh"), display_name("nogan"))
    assert _data(gan)[0] == _data(nogan)[0] == [40.0, 80.0]
    np.testing.assert_array_equal(_data(gan)[1], [50.0, np.nan])  # the gap: beyond the tested bitrates
    assert _data(nogan)[1] == [45.0, 95.0]
    assert diagonal.get_label() == "no change" and _data(diagonal) == ([40.0, 80.0], [40.0, 80.0])
    assert ax.get_ylabel() == "H.264 bitrate at equal LPIPS (kbps)" and "LPIPS" in ax.get_title()


def test_rd_curves_draw_every_method_against_the_scored_bitrate(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    rd = _rd()
    assert rd_curves(rd, tmp_path / "rd.png").stat().st_size > 10_000
    axes = figs[0].axes
    assert len(axes) == len(RD_PANELS)
    for ax, (col, label) in zip(axes, RD_PANELS):
        assert ax.get_ylabel() == label
        drawn = [_data(ln) for ln in ax.lines if len(ln.get_xdata())]
        assert drawn == [(list(d[RATE]), list(d[col])) for d in rd.values()]
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == list(rd)


def test_loss_spread_is_the_std_after_the_warmup(tmp_path):
    live = _live(tmp_path, {"train/loss_d": [(10, 5.0), (20, 1.0), (30, 3.0)], "train/loss_adv": [(30, 2.0)]})
    spread = loss_spread(live, after=10)
    assert spread == {"loss_d": pytest.approx(pd.Series([1.0, 3.0]).std())}  # one value: no spread


def test_gan_vs_nogan_places_sub_phases_on_one_time_axis(tmp_path, monkeypatch):
    figs, boxes = _captured(monkeypatch), []
    real_boxplot = vqe.reporting.curves.sns.boxplot
    monkeypatch.setattr(vqe.reporting.curves.sns, "boxplot",
                        lambda data, **kw: (boxes.append(data.copy()), real_boxplot(data=data, **kw))[1])
    gan = _live(tmp_path / "gan", {"val/lpips": [(2, 0.3), (4, 0.28)], "val/psnr": [(2, 30.0), (4, 30.5)],
                                   "train/loss_d": [(2, 7.0), (3, 1.0), (4, 1.2)],
                                   "train/loss_adv": [(3, 2.0), (4, 2.5)]})
    nogan = tmp_path / "nogan"
    _live(nogan / "pretrain", {"val/lpips": [(5, 0.25)], "val/psnr": [(5, 29.0)], "val/seconds": [(5, 9.0)]})
    _live(nogan / "critic_1", {"train/acc": [(1, 0.6)], "train/loss_d": [(1, 4.0)]})
    _live(nogan / "handoff_1", {"val/lpips": [(1, 0.24)], "val/psnr": [(1, 29.1)], "val/seconds": [(1, 1.0)],
                                "train/loss_d": [(1, 0.5)], "train/loss_adv": [(2, 9.0)]})
    gan_summary = {"seconds": 8.0, "iterations": 4, "val_stage_a": {"lpips": 0.31, "psnr": 30.2}}
    nogan_summary = {"val_start": {"lpips": 0.31, "psnr": 30.2}, "val_pretrain": {"lpips": 0.25, "psnr": 29.0},
                     "seconds": {"pretrain": 10.0, "critic_1": 2.0, "handoff_1": 1.5}}
    out = gan_vs_nogan(gan, gan_summary, nogan, nogan_summary, tmp_path / "cmp.png", gan_warmup=2)
    assert out.stat().st_size > 10_000
    lp_ax, psnr_ax, loss_ax = figs[0].axes
    # GAN: no val/seconds logged, so time = step x 8 s / 4 it; NoGAN: each sub-phase's own seconds after
    # the earlier sub-phases (handoff_1 starts at 10 + 2 s)
    gan_t, nogan_t = [0.0, 4.0, 8.0], [0.0, 9.0, 13.0]
    for ax, gan_y, nogan_y in ((lp_ax, [0.31, 0.3, 0.28], [0.31, 0.25, 0.24]),
                               (psnr_ax, [30.2, 30.0, 30.5], [30.2, 29.0, 29.1])):
        gan_line, nogan_line = ax.lines[:2]
        assert gan_line.get_label() == "phase-2 GAN (time = iteration x mean s/it)"
        assert nogan_line.get_label() == "NoGAN"
        assert _data(gan_line) == (gan_t, gan_y) and _data(nogan_line) == (nogan_t, nogan_y)
        spans = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert [(p.get_x(), p.get_x() + p.get_width()) for p in spans] == [(0.0, 10.0), (10.0, 12.0), (12.0, 13.5)]
        assert [t.get_text() for t in ax.texts] == [" pretrain", " critic_1", " handoff_1"]
    assert list(lp_ax.lines[2].get_ydata()) == [0.28, 0.28] and len(psnr_ax.lines) == 2  # the GAN's final LPIPS
    # seed 003's claim on these curves: the GAN's final 0.28 is first reached at 8 s (its end), NoGAN's 0.25 at 9 s
    claim = nogan_time_to_gan_lpips(*gan_nogan_curves(gan, gan_summary, nogan, nogan_summary)[:2])
    assert claim == {"gan_final_val_lpips": 0.28, "nogan_final_val_lpips": 0.24, "gan_final_val_psnr": 30.5,
                     "nogan_final_val_psnr": 29.1, "gan_seconds_to_reach": 8.0, "nogan_seconds_to_reach": 9.0,
                     "gan_seconds": 8.0, "nogan_seconds": 13.0, "holds": False}
    # the boxes: GAN losses after its warm-up (step 2's 7.0 is left out), NoGAN's from hand-offs only
    (data,) = boxes
    gan_m, nogan_m = "GAN (10-it means)", "NoGAN hand-off (per it)"
    assert list(data.itertuples(index=False, name=None)) == [
        (gan_m, "loss_d", 1.0), (gan_m, "loss_d", 1.2), (nogan_m, "loss_d", 0.5),
        (gan_m, "loss_adv", 2.0), (gan_m, "loss_adv", 2.5), (nogan_m, "loss_adv", 9.0)]
    assert loss_ax.get_title() == "adversarial losses while the game is on"


def test_validation_times_are_measured_or_estimated(tmp_path):
    from vqe.reporting.curves import _validation_over_time

    measured = _live(tmp_path / "m", {"val/lpips": [(5, 0.25)], "val/psnr": [(5, 29.0)], "val/seconds": [(5, 9.0)]})
    assert _validation_over_time(measured, 12.0, None)["seconds"].tolist() == [21.0]
    estimated = _live(tmp_path / "e", {"val/lpips": [(2, 0.3), (4, 0.28)], "val/psnr": [(2, 30.0), (4, 30.5)]})
    assert _validation_over_time(estimated, 0.0, 2.5)["seconds"].tolist() == [5.0, 10.0]


def test_moving_row_finds_the_row_that_changes():
    clip = np.zeros((4, 6, 5, 3), np.uint8)
    clip[:, 4, :, 0] = [[0], [90], [10], [200]]  # only row 4 changes over time
    assert moving_row(clip) == 4


def _clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.integers(0, 255, (5, 24, 32, 3), dtype=np.uint8) for name in ("input", "ours", "gt")}


def test_temporal_profile_stacks_one_row_of_every_frame(tmp_path, monkeypatch):
    figs, clips = _captured(monkeypatch), _clips()
    assert temporal_profile(clips, 3, tmp_path / "tp.png").stat().st_size > 10_000
    fig = figs[0]
    assert fig.get_suptitle() == "Temporal profile of row 3" and len(fig.axes) == len(clips)
    for ax, (name, frames) in zip(fig.axes, clips.items()):
        (image,) = ax.get_images()
        assert ax.get_title() == name
        np.testing.assert_array_equal(np.asarray(image.get_array()), frames[:, 3])  # time down, x across


def test_frame_strip_shows_the_same_crop_of_consecutive_frames(tmp_path, monkeypatch):
    figs, clips = _captured(monkeypatch), _clips()
    assert frame_strip(clips, tmp_path / "fs.png", crop=(2, 4, 16), title="strip").stat().st_size > 10_000
    fig = figs[0]
    axes = np.array(fig.axes).reshape(len(clips), 5)
    assert fig.get_suptitle() == "strip"
    assert [ax.get_title() for ax in axes[0]] == [f"t + {t}" for t in range(5)]
    for row, (name, frames) in zip(axes, clips.items()):
        assert row[0].get_ylabel() == name
        for t, ax in enumerate(row):
            (image,) = ax.get_images()
            np.testing.assert_array_equal(np.asarray(image.get_array()), frames[t, 2:18, 4:20])  # (y, x, size)


def _architecture_labels(fig) -> tuple[list[str], int, list[float]]:
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.texts if not isinstance(t, Annotation)]
    arrows = sum(isinstance(t, Annotation) for t in ax.texts)
    boxes = [p.get_x() for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(labels)  # one label per box
    return labels, arrows, boxes


def test_architecture_boxes_carry_the_generator_configuration(tmp_path, monkeypatch, smoke_params):
    figs = _captured(monkeypatch)
    a = replace(smoke_params.stage_a.model, mode="sra", n=1, align_channels=[8, 4], offset_groups=2,
                extract_blocks=3, channels=8, blocks=2, growth=4, attention=True)
    b = replace(smoke_params.stage_b.model, enabled=True, channels=6, blocks=1)
    disc = asdict(replace(smoke_params.stage_b.disc, kinds=["spatial", "temporal"], channels=16, layers=3))
    gen = Generator(stage_a=asdict(a), stage_b=asdict(b), scale=2)
    assert architecture(gen.config, gen.scale, disc, tmp_path / "a.png").stat().st_size > 10_000
    labels, arrows, xs = _architecture_labels(figs[0])
    assert labels == [
        "input window\n2N+1 = 3 frames", "features\n3 res. blocks",
        "PCD alignment\n2 levels [8, 4]\n2 offset groups", "1×1 fusion\n→ 8 ch", "2 × RRDB\n+ ECBAM, growth 4",
        "pixel shuffle ×2\n+ convs at output size", "+ bicubic ×2\n= Y^A (Stage A)", "U-Net (1 level)\n6 filters\n1 res. blocks",
        "+ Y^A\n= Ŷ (Stage B)",
        "discriminators (spatial, temporal):\nPatchGAN, 16 ch, 3 stride-2 layers;\n"
        "relativistic average loss (phase 2 only)"]
    assert arrows == 8 and xs[:9] == sorted(xs[:9])  # the nine stages left to right, chained by arrows
    # Stage A alone, same resolution: no U-Net, a plain conv, the centre frame as the residual base
    pp = Generator(stage_a=asdict(replace(a, mode="pp", attention=False)), stage_b=asdict(replace(b, enabled=False)), scale=1)
    architecture(pp.config, pp.scale, disc, tmp_path / "pp.png")
    labels, arrows, _ = _architecture_labels(figs[1])
    assert labels[4:7] == ["2 × RRDB\nno ECBAM, growth 4", "conv", "+ centre frame\n= Y^A (Stage A)"]
    assert len(labels) == 8 and arrows == 6 and not any("U-Net" in t for t in labels)
    # the low-resolution recipe: stacked frames, residual blocks, a pixel-shuffle tail
    stack = Generator(stage_a=asdict(replace(a, align="stack", block="residual", tail="shuffle")), stage_b=asdict(b), scale=2)
    architecture(stack.config, stack.scale, disc, tmp_path / "stack.png")
    labels, _, _ = _architecture_labels(figs[2])
    assert labels[1:4] == ["frames stacked\non channels\n3×3 conv → 8 ch", "2 × res. block\n+ ECBAM",
                           "conv → 3·2² ch\npixel shuffle ×2"]


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
    h264 = {"input": rd["input"].assign(psnr=[23.0, 25.0], lpips=[0.55, 0.45], **{RATE: [30.0, 60.0]})}
    assert codec_rd({"libx265": rd, "libsvtav1": rd}, h264, tmp_path / "codecs.png").stat().st_size > 10_000
    psnr_x265, psnr_av1, lpips_x265, _ = figs[0].axes  # rows: metrics, columns: codecs
    assert (psnr_x265.get_title(), psnr_av1.get_title()) == ("libx265", "libsvtav1")
    plain = "plain decode (bicubic up-scaled)"
    for ax, col in ((psnr_x265, "psnr"), (lpips_x265, "lpips")):
        assert [ln.get_label() for ln in ax.lines] == [plain, f"{plain}, on H.264 input", "ours"]
        decode, on_h264, ours = ax.lines
        assert _data(decode) == ([40.0, 80.0], list(rd["input"][col]))  # x: the scored frames' bitrate
        assert _data(on_h264) == ([30.0, 60.0], list(h264["input"][col]))
        assert _data(ours) == ([40.0, 80.0], list(rd["ours"][col]))
        assert (decode.get_linestyle(), ours.get_linestyle()) == ("--", "-")
    table = pd.DataFrame({"trained_kbps": ["40", "40", "all", "all"], "test_kbps": [40.0, 80.0] * 2,
                          "psnr": [24.0, 25.0, 24.5, 25.5], "lpips": [0.5, 0.4, 0.45, 0.35]})
    assert resilience(table, tmp_path / "res.png").stat().st_size > 10_000
    psnr_ax, lpips_ax = figs[1].axes
    assert [ln.get_label() for ln in lpips_ax.lines] == ["trained at 40 kbps", "all bitrates"]
    assert [_data(ln) for ln in psnr_ax.lines] == [([40.0, 80.0], [24.0, 25.0]), ([40.0, 80.0], [24.5, 25.5])]
    assert [_data(ln) for ln in lpips_ax.lines] == [([40.0, 80.0], [0.5, 0.4]), ([40.0, 80.0], [0.45, 0.35])]
    assert (psnr_ax.get_ylabel(), lpips_ax.get_ylabel()) == ("PSNR ↑", "LPIPS ↓")
