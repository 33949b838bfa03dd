"""Test-time adaptation: pairs one scale down at the input's bits per pixel, the hold-out rule, the CLI."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import profile_params

from vqe.data.codec import EncodeSettings, encode
from vqe.data.synthetic import render_clip
from vqe.inference.adapt import adapt, holdout_gain, input_bpp, self_pairs
from vqe.models.stage_a import StageA
from vqe.util.errors import VQEError
from vqe.util.upscale import bicubic_frames


@pytest.fixture(scope="module")
def decoded() -> np.ndarray:
    """A small decoded low-resolution clip (what an SRA model reads)."""
    return render_clip("coffee", frames=8, height=96, width=128, seed=3)


def _stack_model(scale: int = 2, mode: str = "sra") -> StageA:
    cfg = replace(profile_params("tiny").stage_a.model, mode=mode, channels=8, blocks=1)
    torch.manual_seed(0)
    return StageA(**asdict(cfg), scale=scale)


def test_self_pairs_are_one_scale_down_at_the_same_bits_per_pixel(decoded, tmp_path):
    bpp = 0.2
    pairs = self_pairs(decoded, 2, bpp, 25.0)
    assert pairs.shape == (8, 48, 64, 3) and pairs.dtype == np.uint8
    assert abs(pairs.astype(float).mean() - decoded.astype(float).mean()) < 5  # a degraded copy, not garbage
    # a lower bits per pixel gives a worse copy of the down-scaled frames
    small = bicubic_frames(pairs, 96, 128).astype(float)
    worse = bicubic_frames(self_pairs(decoded, 2, 0.05, 25.0), 96, 128).astype(float)
    ref = decoded.astype(float)
    assert np.abs(worse - ref).mean() > np.abs(small - ref).mean()
    with pytest.raises(VQEError, match="too small"):
        self_pairs(decoded[:, :8, :8], 2, bpp, 25.0)


def test_input_bpp_counts_the_packets(decoded, tmp_path):
    path = tmp_path / "in.mkv"
    result = encode(decoded, path, EncodeSettings(crf=30))
    # the muxer stores H.264 NAL units length-prefixed (a byte or so per frame more than the encoder output)
    assert input_bpp(path) == pytest.approx(result.bytes * 8 / (8 * 128 * 96), rel=5e-3)


def test_holdout_gain_of_an_untrained_model_is_zero(decoded):
    """The model starts as bicubic (zero last conv) and the base is the same bicubic: gain exactly 0."""
    lq = self_pairs(decoded, 2, 0.3, 25.0)
    base = bicubic_frames(lq[[6, 7]], 96, 128)
    assert holdout_gain(_stack_model(), lq, decoded, [6, 7], torch.device("cpu"), base) == 0.0


def test_adaptation_keeps_the_best_holdout_state(decoded):
    model, report = adapt(_stack_model(), decoded, bpp=0.3, fps=25.0, seconds=4.0, lr=1e-3, batch=2, patch=16,
                          eval_every=0.5, progress=False)
    gains = [p["holdout_gain"] for p in report.curve]
    assert report.curve[0]["iteration"] == 0 and gains[0] == 0.0 and len(gains) >= 3
    assert report.kept_gain == max(gains) >= 0.0  # never worse than the model as given, on the hold-out
    kept = [p["iteration"] for p in report.curve if p["holdout_gain"] == max(gains)][0]
    assert report.kept_iteration == kept and report.iterations >= kept
    assert report.holdout_frames == 2  # 25 % of 8
    # the returned model is the kept state: its hold-out gain is the recorded one
    lq = self_pairs(decoded, 2, 0.3, 25.0)
    base = bicubic_frames(lq[[6, 7]], 96, 128)
    assert holdout_gain(model, lq, decoded, [6, 7], torch.device("cpu"), base) == pytest.approx(report.kept_gain, abs=1e-9)


def test_perceptual_adaptation_keeps_the_state_of_lowest_holdout_lpips(decoded):
    """With an LPIPS weight the loss adds LPIPS-alex and the hold-out keeps the state of lowest LPIPS (the
    model as given included); without one, LPIPS is neither trained on nor scored."""
    from vqe.inference.adapt import holdout_scores

    model, report = adapt(_stack_model(), decoded, bpp=0.3, fps=25.0, seconds=4.0, lr=1e-3, batch=2, patch=16,
                          eval_every=0.5, perceptual=0.5, progress=False)
    assert report.perceptual == 0.5 and len(report.curve) >= 3
    given = report.curve[0]
    assert given["iteration"] == 0 and given["holdout_gain"] == 0.0 and given["holdout_lpips"] > 0
    best = min(report.curve, key=lambda p: p["holdout_lpips"])
    assert report.kept_iteration == best["iteration"] and report.kept_gain == best["holdout_gain"]
    assert best["holdout_lpips"] < given["holdout_lpips"]  # LPIPS in the loss lowers it on held-out frames
    lq = self_pairs(decoded, 2, 0.3, 25.0)
    base = bicubic_frames(lq[[6, 7]], 96, 128)
    kept = holdout_scores(model, lq, decoded, [6, 7], torch.device("cpu"), base, lpips=True)
    assert kept["holdout_lpips"] == pytest.approx(best["holdout_lpips"], abs=1e-6)  # the returned model is it
    _, plain = adapt(_stack_model(), decoded, bpp=0.3, fps=25.0, seconds=1.0, batch=2, patch=16, progress=False)
    assert plain.perceptual == 0.0 and all("holdout_lpips" not in p for p in plain.curve)


def test_adaptation_refuses_what_it_cannot_do(decoded):
    with pytest.raises(VQEError, match="up-scaling model"):
        adapt(_stack_model(scale=1, mode="pp"), decoded, bpp=0.3, fps=25.0, seconds=1.0)
    with pytest.raises(VQEError, match="> 0 seconds"):
        adapt(_stack_model(), decoded, bpp=0.3, fps=25.0, seconds=0.0)
    with pytest.raises(VQEError, match="LPIPS weight"):
        adapt(_stack_model(), decoded, bpp=0.3, fps=25.0, seconds=1.0, perceptual=-0.1)
    with pytest.raises(VQEError, match="too few"):
        adapt(_stack_model(), decoded[:1], bpp=0.3, fps=25.0, seconds=1.0)


def test_cli_adapt_restores_a_video(tmp_path, decoded):
    from vqe.cli import main
    from vqe.data.video import read_video
    from vqe.models.build import save_model

    model_path, video, out = tmp_path / "m.pt", tmp_path / "in.mkv", tmp_path / "out.mkv"
    save_model(model_path, _stack_model())
    encode(decoded, video, EncodeSettings(crf=30))
    main(["enhance", str(video), "-o", str(out), "--model", str(model_path), "--adapt", "2", "--device", "cpu"])
    assert read_video(out).shape == (8, 192, 256, 3)
    with pytest.raises(SystemExit):
        main(["enhance", str(video), "-o", str(tmp_path / "x.mkv"), "--model", str(model_path), "--adapt", "-1"])
    with pytest.raises(SystemExit):
        main(["enhance", str(video), "-o", str(tmp_path / "x.mkv"), "--model", str(model_path), "--adapt", "2",
              "--adapt-lpips", "-0.5"])
    assert not (tmp_path / "x.mkv").exists()
    assert Path(video).exists()


def test_adapt_rows_adapt_each_encode_from_the_same_model(tmp_path, smoke_manifest):
    from vqe.evaluation.adapted import adapt_method_by_name
    from vqe.evaluation.evaluate import method_by_name
    from vqe.models.build import load_model, save_model

    (tmp_path / "release").mkdir()
    save_model(tmp_path / "release" / "tiny.pt", _stack_model())
    params = replace(profile_params("smoke").eval, device="cpu")
    method = adapt_method_by_name("tiny_release_adapt", smoke_manifest, params, 1.0, models_dir=tmp_path)
    plain = method_by_name("tiny_release", smoke_manifest, params, models_dir=tmp_path)
    entry = smoke_manifest.select("test")[0]
    span = [[0, 1], [4, 5]]
    outs = method(entry, span)
    assert [o.shape[0] for o in outs] == [2, 2] and outs[0].shape == plain(entry, span)[0].shape
    info = method.info["adapt"]
    assert 1.0 <= info["seconds"] < 30.0  # the budget (1 s), with the pairs it built
    assert info["iterations"] >= 1 and 0 <= info["kept_iteration"] <= info["iterations"]
    assert info["holdout_gain"] >= 0.0  # the unadapted model is the first candidate
    # the loaded model itself is never changed: the next encode adapts from the same weights
    held = next(c.cell_contents for c in method.__closure__ if isinstance(c.cell_contents, torch.nn.Module))
    assert all(torch.equal(v, w) for v, w in zip(held.state_dict().values(),
                                                  load_model(tmp_path / "release" / "tiny.pt").state_dict().values()))
    with pytest.raises(VQEError, match=r"release/none\.pt"):
        adapt_method_by_name("none_release_adapt", smoke_manifest, params, 1.0, models_dir=tmp_path)
    with pytest.raises(VQEError, match="not an adapted method"):
        adapt_method_by_name("tiny_release", smoke_manifest, params, 1.0, models_dir=tmp_path)


def test_the_holdout_is_scored_on_a_central_crop(decoded):
    from vqe.inference.adapt import centre_crop

    lq = self_pairs(decoded, 2, 0.3, 25.0)  # 48 x 64 at D'
    small, target = centre_crop(lq, decoded, 32, 2)
    assert small.shape[1:3] == (32, 32) and target.shape[1:3] == (64, 64)
    np.testing.assert_array_equal(small, lq[:, 8:40, 16:48])
    np.testing.assert_array_equal(target, decoded[:, 16:80, 32:96])
    same, whole = centre_crop(lq, decoded, None, 2)
    assert same is lq and whole is decoded
    assert centre_crop(lq, decoded, 500, 2)[0].shape == lq.shape  # larger than the frame: the whole frame
