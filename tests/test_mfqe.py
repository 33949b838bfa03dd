"""MFQE 2.0 baseline: PQF labels and their nearest neighbours in a window, the detector on bitstream features,
the motion compensation, the PQF / non-PQF routing, the MC loss, and the side information through enhance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqe.data.bitstream import frame_stats
from vqe.data.codec import frame_packets
from vqe.inference.enhance import enhance_frames, frame_side, restore_span
from vqe.models.build import load_model, save_model
from vqe.models.mfqe import (
    MFQE,
    MotionCompensation,
    PQFDetector,
    detector_features,
    fit_detector,
    luma,
    nearest_pqfs,
    pqf_labels,
)
from vqe.util.errors import VQEError
from vqe.util.upscale import bicubic_up

TINY = dict(n=2, channels=4, dense=3, mc_channels=4, detector_hidden=4)


def tiny(trained: bool = True) -> MFQE:
    torch.manual_seed(0)
    model = MFQE(2, **TINY).eval()
    if trained:  # the zero-initialised last convs would hide which network ran
        for net in (model.qe_pqf, model.qe_other):
            torch.nn.init.normal_(net.last.weight, std=0.1)
    return model


def test_pqf_labels_are_the_local_psnr_maxima():
    psnr = np.array([30.0, 29.0, 31.0, 30.5, 30.5, 32.0])
    assert pqf_labels(psnr).tolist() == [True, False, True, False, False, True]
    assert pqf_labels(np.array([30.0])).tolist() == [True]


def test_nearest_pqfs_in_a_window_fall_back_to_the_frame_itself():
    side = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1.0]])
    prev, nxt = nearest_pqfs(side, 2)
    assert prev.tolist() == [0, 1, 2, 1] and nxt.tolist() == [3, 4, 2, 3]


def test_untrained_model_is_the_bicubic_input_and_shapes():
    model = tiny(trained=False)
    x = torch.rand(3, 5, 3, 10, 14)
    with torch.no_grad():
        y = model(x, torch.tensor([[1, 0, 0, 0, 1.0]] * 3))
    assert y.shape == (3, 3, 20, 28)
    assert torch.allclose(y, bicubic_up(x[:, 2], 2), atol=1e-6)


def test_the_residual_is_on_luminance_and_the_frame_type_picks_the_network():
    """A PQF centre runs qe_pqf, another frame qe_other (perturbing one changes only its frames); the change
    is the same on R, G and B (a luminance residual with the chroma kept)."""
    model = tiny()
    x = torch.rand(2, 5, 3, 8, 8)
    side = torch.tensor([[0, 0, 1, 0, 0], [1, 0, 0, 0, 1.0]])  # sample 0: centre is a PQF; sample 1: not
    with torch.no_grad():
        before = model(x, side)
        torch.nn.init.normal_(model.qe_pqf.last.weight, std=0.1)
        after = model(x, side)
    assert not torch.allclose(before[0], after[0]) and torch.equal(before[1], after[1])
    lr_change = torch.nn.functional.interpolate(before - bicubic_up(x[:, 2], 2), scale_factor=0.5, mode="area")
    assert torch.allclose(lr_change[:, 0], lr_change[:, 1], atol=1e-5)
    assert torch.allclose(lr_change[:, 1], lr_change[:, 2], atol=1e-5)


def test_missing_or_misshaped_side_information_is_an_error():
    model = tiny()
    with pytest.raises(ValueError, match="PQF labels"):
        model(torch.rand(1, 5, 3, 8, 8))
    with pytest.raises(ValueError, match="PQF labels"):
        model(torch.rand(1, 5, 3, 8, 8), torch.ones(1, 3))


def test_motion_compensation_learns_a_one_pixel_shift():
    """A reference shifted by one pixel: a few Adam steps on MFQE's MC loss bring the warped reference closer
    to the frame than the reference itself is (any size: padded to a multiple of 4 inside)."""
    torch.manual_seed(0)
    frame = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 22, 30), 3, 1, 1)
    ref = torch.roll(frame, 1, dims=-1)
    mc = MotionCompensation(8, max_flow=4.0)
    opt = torch.optim.Adam(mc.parameters(), lr=3e-3)
    start = torch.nn.functional.mse_loss(ref, frame).item()
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(mc(frame, ref), frame)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mc(frame, ref).shape == frame.shape
    assert loss.item() < 0.6 * start


def test_mc_loss_is_the_mean_of_both_compensated_frames_errors():
    model = tiny().train()
    x, side = torch.rand(2, 5, 3, 8, 8), torch.tensor([[1, 0, 0, 0, 1.0]] * 2)
    model(x, side)
    gt = torch.rand(2, 3, 8, 8)
    prev, nxt = model.last_compensated
    expected = ((prev - luma(gt)) ** 2).mean() / 2 + ((nxt - luma(gt)) ** 2).mean() / 2
    assert model.aux_loss(gt).item() == pytest.approx(expected.item(), rel=1e-6)
    model.eval()
    model(x, side)
    with pytest.raises(RuntimeError, match="training mode"):
        model.aux_loss(gt)


def test_detector_learns_that_low_qp_frames_are_pqfs():
    """Labels = the frames whose QP is below both neighbours' (MFQE's README: the QP matters most)."""
    rng = np.random.default_rng(0)
    clips = []
    for _ in range(6):
        qp = rng.uniform(38, 51, 60)
        labels = pqf_labels(-qp)
        bits = rng.integers(100, 2000, 60)
        clips.append((detector_features(qp, bits, ["P"] * 60), labels))
    torch.manual_seed(0)
    record = fit_detector(PQFDetector(16), clips, steps=400)
    assert record["accuracy"] > 0.9 and 0.2 < record["pqf_share"] < 0.5


def test_detector_features_scale_qp_bits_and_types():
    f = detector_features(np.array([51.0, 25.5]), np.array([1 << 20, 1]), ["I", "B"])
    assert f.shape == (2, 5) and f.dtype == np.float32
    assert f[0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0] and f[1].tolist() == [0.5, 0.0, 0.0, 0.0, 1.0]


def test_frame_stats_of_a_stored_stream(smoke_manifest):
    entry = smoke_manifest.select("test")[0]
    path = smoke_manifest.root / entry.stream
    stats = frame_stats(path)
    bits, keys = frame_packets(path)
    assert len(stats) == entry.frames and np.array_equal(stats.bits, bits)
    assert stats.types[0] == "I" and 0 in keys
    assert np.all((stats.qp >= 0) & (stats.qp <= 51))


def test_side_information_flows_through_enhance_and_save_load(tmp_path, smoke_manifest):
    """frame_side reads the bitstream with the saved detector; restore_span of a span equals the whole clip's
    frames there (its side windows sliced like the frames); without side information enhance refuses."""
    model = tiny()
    save_model(tmp_path / "m.pt", model)
    model = load_model(tmp_path / "m.pt")
    entry = smoke_manifest.select("test")[0]
    frames = np.asarray(smoke_manifest.lq(entry, low_res=True))
    side = frame_side(model, smoke_manifest.root / entry.stream)
    assert side.shape == (entry.frames,) and set(np.unique(side)) <= {0.0, 1.0}
    whole = np.stack(list(enhance_frames(model, frames, side=side)))
    span = restore_span(model, frames, 1, 1, side=side)
    assert np.array_equal(span[0], whole[1])
    with pytest.raises(VQEError, match="side information"):
        list(enhance_frames(model, frames))
    with pytest.raises(VQEError, match="side information for 2 frames"):
        restore_span(model, frames, 0, 1, side=side[:2])


def test_vqe_enhance_reads_the_side_information_of_its_input(tmp_path, smoke_manifest):
    """`enhance_video` on an H.264 file: one pre-pass for the PQF labels, then the frames, all enhanced x2."""
    from vqe.inference.enhance import enhance_video

    entry = smoke_manifest.select("test")[0]
    summary = enhance_video(smoke_manifest.root / entry.stream, tmp_path / "out.mp4", tiny(), progress=False)
    assert summary["frames"] == entry.frames and summary["output_size"] == (2 * entry.lr_width, 2 * entry.lr_height)
