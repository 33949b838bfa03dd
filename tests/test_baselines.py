import numpy as np
import pytest

from vqe.baselines import filter_video, run_baseline
from vqe.errors import VQEError
from vqe.metrics.fidelity import psnr

DEBLOCK = "deblock=filter=strong:block=4"


@pytest.fixture(scope="module")
def entry(smoke_manifest):
    return min(smoke_manifest.select("test"), key=lambda e: e.kbps)


def test_input_is_the_stored_bicubic_decode(smoke_manifest, entry):
    np.testing.assert_array_equal(run_baseline("input", smoke_manifest, entry, DEBLOCK), smoke_manifest.lq(entry))


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
