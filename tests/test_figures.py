"""Figure functions on small inputs: they draw what they are given and return the written path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vqe.figures import bitrate_equivalency, gan_vs_nogan, loss_spread, perception_distortion


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
