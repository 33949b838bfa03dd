"""Synthetic camera-motion clips: shape, determinism, framing, motion bounds, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from vqe.data import synthetic
from vqe.data.synthetic import PHOTOS, load_photo, render_clip
from vqe.util.errors import VQEError


def _shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sub-pixel (dy, dx) translation between two uint8 RGB frames, by phase correlation."""
    grey_a, grey_b = a.astype(np.float64).mean(-1), b.astype(np.float64).mean(-1)
    shift, _, _ = phase_cross_correlation(grey_a, grey_b, upsample_factor=20)
    return shift


def _constant_photo(monkeypatch: pytest.MonkeyPatch, height: int, width: int) -> None:
    """Replace every photo by a flat grey one: any pixel not exactly that grey was sampled
    outside the photo (zero padding) or mixed with something else."""
    photo = torch.full((1, 3, height, width), 200.0)
    monkeypatch.setattr(synthetic, "_photo_tensor", lambda name: photo)


def test_photos_are_bundled_rgb_uint8() -> None:
    assert len(PHOTOS) == len(set(PHOTOS)) == 13
    for name in PHOTOS:
        image = load_photo(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert min(image.shape[:2]) >= 300, name
        assert image.std() > 10, name  # a real picture, not a blank
    grey = load_photo("camera")
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    assert load_photo("stereo_motorcycle").shape == (500, 741, 3)  # the left view only


def test_load_photo_returns_a_private_copy() -> None:
    image = load_photo("coffee")
    image[:] = 0
    assert load_photo("coffee").max() > 0


@pytest.mark.parametrize("name", ["nope", "skin", "", None])
def test_unknown_photo_raises(name: object) -> None:
    with pytest.raises(VQEError, match="astronaut.*moon"):  # lists the valid ones
        load_photo(name)  # type: ignore[arg-type]
    with pytest.raises(VQEError, match="background"):
        render_clip(name, frames=2, height=16, width=16, seed=0)  # type: ignore[arg-type]


def test_shape_dtype_and_range() -> None:
    clip = render_clip("coffee", frames=5, height=48, width=80, seed=3)
    assert clip.shape == (5, 48, 80, 3) and clip.dtype == np.uint8
    assert clip.std() > 10  # real texture, not a flat field
    assert not np.array_equal(clip[0], clip[-1])  # the camera moved


def test_deterministic_per_seed() -> None:
    kwargs = dict(frames=6, height=40, width=64, objects=3)
    a = render_clip("astronaut", seed=11, **kwargs)
    b = render_clip("astronaut", seed=11, **kwargs)
    c = render_clip("astronaut", seed=12, **kwargs)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5


@pytest.mark.parametrize("photo_size", [(40, 50), (300, 451), (1411, 1411)])
def test_view_never_leaves_the_photo(monkeypatch: pytest.MonkeyPatch, photo_size) -> None:
    """With a flat photo, every output pixel must be exactly that flat value: sampling
    outside the photo would read zero padding and darken it (a black border)."""
    _constant_photo(monkeypatch, *photo_size)
    for seed, (h, w) in enumerate([(180, 320), (37, 53), (200, 16), (16, 300)]):
        clip = render_clip(
            "coffee", frames=16, height=h, width=w, seed=seed, objects=0,
            max_shift=4.0, max_rotation=15.0, max_zoom=0.3,
        )  # fmt: skip
        assert (clip == 200).all(), (photo_size, h, w)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "brick", "immunohistochemistry", "retina"])
def test_no_black_borders_on_real_photos(name: str) -> None:
    for seed in range(3):
        clip = render_clip(
            name, frames=8, height=45, width=77, seed=seed, max_rotation=10.0, max_zoom=0.3
        )
        black = clip.max(axis=-1) <= 10
        for edge in (black[:, 0, :], black[:, -1, :], black[:, :, 0], black[:, :, -1]):
            assert not edge.all(axis=-1).any(), name  # no all-black edge row or column
            assert edge.mean() < 0.01, name


@pytest.mark.parametrize("seed", [0, 1])
def test_pure_pan_is_real_and_bounded(seed: int) -> None:
    max_shift = 3.0
    clip = render_clip(
        "chelsea", frames=12, height=128, width=192, seed=seed, objects=0,
        max_shift=max_shift, max_rotation=0.0, max_zoom=0.0,
    )  # fmt: skip
    speeds = np.array([np.hypot(*_shift(clip[t], clip[t + 1])) for t in range(len(clip) - 1)])
    assert speeds.max() <= max_shift + 0.2
    assert speeds.max() >= 0.6 * max_shift - 0.2  # the peak is drawn in [0.6, 1] * max_shift
    assert speeds.mean() > 0.3


def test_rotation_and_zoom_stay_within_the_bound_at_the_corners() -> None:
    """The bound is on the motion anywhere in the frame, so check it where rotation and zoom
    move pixels the most: local phase correlation on patches at the four corners."""
    max_shift, p = 3.0, 48
    clip = render_clip(
        "coffee", frames=10, height=192, width=288, seed=5, objects=0,
        max_shift=max_shift, max_rotation=10.0, max_zoom=0.3,
    )  # fmt: skip
    worst = 0.0
    for t in range(len(clip) - 1):
        for ys in (slice(0, p), slice(-p, None)):
            for xs in (slice(0, p), slice(-p, None)):
                worst = max(worst, float(np.hypot(*_shift(clip[t, ys, xs], clip[t + 1, ys, xs]))))
    assert 0.5 <= worst <= max_shift + 0.5


def test_camera_path_peak_motion_matches_the_target() -> None:
    """The exact bound, from the geometry itself: peak per-frame motion anywhere in the
    frame lies in [0.6, 1] * max_shift, including rotation and zoom."""
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float64) * [320, 180]
    for seed in range(5):
        rng = np.random.default_rng(seed)
        shift, theta, zoom = synthetic._camera_path(rng, 60, 360, 640, 4.0, 5.0, 0.2)
        peak = synthetic._camera_flow(shift, theta, zoom, corners)
        assert 0.6 * 4.0 - 1e-6 <= peak <= 4.0 + 1e-6
        assert np.abs(theta).max() <= math.radians(5.0) + 1e-9
        assert np.abs(np.log(zoom)).max() <= 0.2 + 1e-9


def test_static_camera_when_max_shift_is_zero() -> None:
    clip = render_clip("rocket", frames=4, height=32, width=48, seed=1, objects=0, max_shift=0.0)
    assert all(np.array_equal(clip[0], frame) for frame in clip)


def _aligned_residual(clip: np.ndarray, margin: int = 10) -> float:
    """Mean |frame t - frame t+1| after undoing the best single global shift."""
    residuals = []
    inner = (slice(margin, -margin), slice(margin, -margin))
    for t in range(len(clip) - 1):
        a, b = clip[t].astype(np.float64).mean(-1), clip[t + 1].astype(np.float64).mean(-1)
        shift = _shift(clip[t], clip[t + 1])
        # Sub-pixel shift in the Fourier domain; its wrap-around stays inside the margin.
        b = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(b), shift)).real
        residuals.append(np.abs(a[inner] - b[inner]).mean())
    return float(np.mean(residuals))


def test_foreground_moves_differently_from_background() -> None:
    kwargs = dict(
        frames=8, height=96, width=160, seed=4, max_shift=1.5, object_shift=3.0,
        max_rotation=0.0, max_zoom=0.0,
    )  # fmt: skip
    background = render_clip("coffee", objects=0, **kwargs)
    scene = render_clip("coffee", objects=4, **kwargs)
    # The camera path does not depend on the objects: they only cover part of the frame.
    covered = np.abs(scene.astype(int) - background.astype(int)).max(-1) > 12
    assert 0.03 < covered.mean() < 0.8
    # One global shift explains the background alone far better than the scene with objects.
    assert _aligned_residual(scene) > 1.5 * _aligned_residual(background)
    # And the objects' footprint changes from frame to frame.
    assert any(not np.array_equal(covered[0], m) for m in covered[1:])


def test_object_photos_are_used() -> None:
    """Grey sprites (moon) over a colour photo: fully covered pixels are exactly grey."""
    kwargs = dict(frames=3, height=80, width=120, seed=2)
    background = render_clip("coffee", objects=0, **kwargs)
    scene = render_clip("coffee", objects=3, object_photos=["moon"], **kwargs)
    covered = np.abs(scene.astype(int) - background.astype(int)).max(-1) > 12
    grey = (scene[..., 0] == scene[..., 1]) & (scene[..., 1] == scene[..., 2])
    assert covered.sum() > 100
    assert (grey & covered).sum() > 0.5 * covered.sum()


@pytest.mark.parametrize(
    "height,width,frames", [(37, 53, 1), (37, 53, 3), (16, 16, 2), (17, 301, 2)]
)
def test_any_size_works(height: int, width: int, frames: int) -> None:
    clip = render_clip("hubble_deep_field", frames=frames, height=height, width=width, seed=7)
    assert clip.shape == (frames, height, width, 3) and clip.dtype == np.uint8


@pytest.mark.parametrize(
    "name,value",
    [
        ("frames", 0),
        ("frames", 2.0),
        ("frames", True),
        ("height", 15),
        ("width", 8),
        ("seed", -1),
        ("seed", "1"),
        ("objects", -1),
        ("max_shift", -0.5),
        ("max_shift", float("nan")),
        ("max_shift", 100.0),  # more than a quarter of the frame per frame
        ("max_rotation", 90.0),
        ("max_zoom", -0.1),
        ("object_shift", float("inf")),
        ("object_photos", []),
        ("object_photos", "moon"),
        ("object_photos", ["moon", "nope"]),
    ],
)
def test_bad_parameters_name_the_parameter(name: str, value: object) -> None:
    kwargs: dict[str, object] = dict(frames=2, height=32, width=32, seed=0)
    kwargs[name] = value
    with pytest.raises(VQEError, match=name):
        render_clip("coffee", **kwargs)  # type: ignore[arg-type]
