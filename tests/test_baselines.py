import numpy as np
import pytest

from vqe.evaluation.baselines import filter_video, run_baseline
from vqe.metrics.fidelity import psnr
from vqe.util.errors import VQEError

DEBLOCK = "deblock=filter=strong:block=4"


@pytest.fixture(scope="module")
def entry(smoke_manifest):
    return min(smoke_manifest.select("test"), key=lambda e: e.kbps)


def keys_bicubic_matrix(n_in: int, scale: int, a: float = -0.75) -> np.ndarray:
    """(n_in * scale, n_in) interpolation matrix of Keys' cubic convolution kernel, pixel centres aligned
    (align_corners=False), borders replicated: written from the kernel's formula, not from torch."""

    def kernel(x: np.ndarray) -> np.ndarray:
        x = np.abs(x)
        return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                        np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))

    m = np.zeros((n_in * scale, n_in))
    for i in range(n_in * scale):
        src = (i + 0.5) / scale - 0.5
        base = int(np.floor(src))
        for k in range(base - 1, base + 3):
            m[i, min(max(k, 0), n_in - 1)] += kernel(src - k)
    return m


def test_input_is_the_bicubic_up_scaled_decode(smoke_manifest, entry):
    """The input row is Keys' bicubic (a = -0.75) of the decoded low-res frames, rounded to 8 bits."""
    out = run_baseline("input", smoke_manifest, entry, DEBLOCK)
    np.testing.assert_array_equal(out, smoke_manifest.lq(entry))
    lr = np.asarray(smoke_manifest.lq(entry, low_res=True)).astype(np.float64)
    s = entry.scale
    mh, mw = keys_bicubic_matrix(lr.shape[1], s), keys_bicubic_matrix(lr.shape[2], s)
    expected = np.einsum("ij,tjkc,lk->tilc", mh, lr, mw).clip(0, 255)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 0.5 + 1e-3  # float32 rounding may flip an exact .5


def test_lanczos_is_a_different_upscaling_of_the_same_decode(smoke_manifest, entry):
    out = run_baseline("lanczos", smoke_manifest, entry, DEBLOCK)
    lq = np.asarray(smoke_manifest.lq(entry))
    assert out.shape == lq.shape and not np.array_equal(out, lq)
    assert psnr(out, lq).mean() > 30  # same content, different interpolation kernel


def test_null_filter_graph_returns_the_decoded_frames(smoke_manifest, entry):
    frames = filter_video(smoke_manifest.root / entry.stream, "null")
    np.testing.assert_array_equal(frames, smoke_manifest.lq(entry, low_res=True))


def test_deblock_smooths_block_edges(smoke_manifest, entry):
    decoded = np.asarray(smoke_manifest.lq(entry, low_res=True)).astype(float)
    deblocked = filter_video(smoke_manifest.root / entry.stream, DEBLOCK).astype(float)
    assert deblocked.shape == decoded.shape

    def edge_step(x: np.ndarray) -> float:  # mean jump across 4-pixel block boundaries
        return float(np.abs(np.diff(x, axis=2))[:, :, 3::4].mean())

    assert edge_step(deblocked) < edge_step(decoded)
    out = run_baseline("deblock", smoke_manifest, entry, DEBLOCK)
    assert out.shape == (entry.frames, entry.height, entry.width, 3)


def test_bad_filter_and_unknown_baseline(smoke_manifest, entry):
    with pytest.raises(VQEError, match="nosuchfilter"):
        filter_video(smoke_manifest.root / entry.stream, "nosuchfilter=1")
    with pytest.raises(VQEError, match="unknown baseline"):
        run_baseline("magic", smoke_manifest, entry, DEBLOCK)
