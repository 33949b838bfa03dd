"""`vqe enhance`: the streaming sliding window, tiling, and video in/out (timestamps, audio, errors).

The models here are small stand-ins that follow the model contract (attributes `n` and `scale`,
(B, 2n+1, 3, h, w) -> (B, 3, h*scale, w*scale)), chosen so that results can be checked exactly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from vqe.cli import main
from vqe.data.codec import EncodeSettings, encode
from vqe.data.video import probe, read_video
from vqe.inference.enhance import default_batch, enhance_frames, enhance_video
from vqe.util.errors import VQEError

# ---------------------------------------------------------------- stand-in models


class Pick(torch.nn.Module):
    """Frame k of the window (the centre frame by default), nearest-neighbour up-scaled."""

    def __init__(self, n: int = 1, scale: int = 1, k: int | None = None):
        super().__init__()
        self.n, self.scale, self.k = n, scale, n if k is None else k

    def forward(self, x):
        y = x[:, self.k]
        return y.repeat_interleave(self.scale, 2).repeat_interleave(self.scale, 3)


class Weighted(torch.nn.Module):
    """An asymmetric weighted sum over the window (frame order and edge handling both show)."""

    def __init__(self, weights):
        super().__init__()
        self.n, self.scale = (len(weights) - 1) // 2, 1
        self.register_buffer("w", torch.tensor(weights, dtype=torch.float32))

    def forward(self, x):
        return (x * self.w.view(1, -1, 1, 1, 1)).sum(1)


class IntConv(torch.nn.Module):
    """Two 3x3 zero-padded convolutions (receptive field radius 2) in exact integer arithmetic.

    Inputs are brought back to integers 0..255 and the weights are small integers, so every sum is
    exact in float32 whatever order a convolution algorithm uses; the output is scaled by a power of 2.
    """

    def __init__(self, n: int = 1, scale: int = 1, seed: int = 0):
        super().__init__()
        self.n, self.scale = n, scale
        g = torch.Generator().manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(3 * (2 * n + 1), 6, 3, padding=1, bias=False)
        self.conv2 = torch.nn.Conv2d(6, 3 * scale * scale, 3, padding=1, bias=False)
        for conv in (self.conv1, self.conv2):
            conv.weight.data = torch.randint(0, 3, conv.weight.shape, generator=g).float()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        b, t, c, h, w = x.shape
        v = torch.round(x.reshape(b, t * c, h, w) * 255)
        y = self.conv2(self.conv1(v)) * 2.0 ** -int(np.log2(27 * 54 * 255 * (2 * self.n + 1)))  # mean ~0.5
        return torch.nn.functional.pixel_shuffle(y, self.scale) if self.scale > 1 else y


# ---------------------------------------------------------------- clips


def textured(t: int = 12, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A deterministic clip with texture and motion (uint8 RGB, (T, H, W, 3))."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.integers(0, 256, (h + 2 * t, w + t, 3)).astype(np.float32), (1.5, 1.5, 0)) * 4 - 384
    return np.stack([base[2 * i:2 * i + h, i:i + w] for i in range(t)]).clip(0, 255).round().astype(np.uint8)


def write_with_audio(path: Path, frames: np.ndarray, fps: int = 25, rate: int = 44100) -> None:
    """An H.264 + AAC (mono 440 Hz tone) clip written with PyAV."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(len(frames) * rate // fps) / rate)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            af = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = rate, start
            out.mux(a.encode(af))
        out.mux(a.encode(None))


def write_ffv1(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    """A lossless clip of any size (odd sizes included)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


def frame_times(path: Path) -> tuple[Fraction, list[float]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.time_base, [float(f.pts * s.time_base) for f in c.decode(s)]


def audio_packets(path: Path) -> tuple[str | None, list[bytes]]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None, []
        s = c.streams.audio[0]
        return s.codec_context.name, [bytes(p) for p in c.demux(s) if p.dts is not None and p.size]


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return textured()


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory, clip) -> Path:
    path = tmp_path_factory.mktemp("clips") / "in.mp4"
    encode(clip, path, EncodeSettings(crf=10, fps=30))
    return path


@pytest.fixture
def fake_models(monkeypatch):
    """The `load_model` that `vqe enhance` calls (`vqe.inference.export.load_any`'s) replaced by a stand-in."""
    import vqe.inference.export as module

    state = {"model": Pick(n=1), "calls": []}

    def load_model(path, device="cpu"):
        state["calls"].append((str(path), str(device)))
        return state["model"]

    monkeypatch.setattr(module, "load_model", load_model, raising=False)
    return state


# ---------------------------------------------------------------- enhance_frames


def reference(model, frames: np.ndarray) -> np.ndarray:
    """The definition: frame t from the window clamp(t-n .. t+n), one window at a time."""
    n, t_all = model.n, len(frames)
    out = []
    with torch.no_grad():
        for t in range(t_all):
            idx = np.clip(np.arange(t - n, t + n + 1), 0, t_all - 1)
            x = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2)[None].float() / 255
            y = model(x)[0].clamp(0, 1).mul(255).round().to(torch.uint8)
            out.append(y.permute(1, 2, 0).numpy())
    return np.stack(out)


@pytest.mark.parametrize("length", [1, 2, 3, 7])
def test_windows_repeat_the_first_and_last_frames(length):
    frames = textured(length, 8, 10, seed=length)
    for k in range(5):  # window position k of n=2: frame clamp(t + k - 2)
        out = np.stack(list(enhance_frames(Pick(n=2, k=k), frames, batch=3)))
        expected = frames[np.clip(np.arange(length) + k - 2, 0, length - 1)]
        np.testing.assert_array_equal(out, expected)


def test_equals_direct_per_window_computation_for_any_batch():
    frames = textured(9, 16, 24, seed=1)
    model = Weighted([0.05, 0.1, 0.5, 0.15, 0.2])
    expected = reference(model, frames)
    assert np.abs(expected.astype(int) - frames).mean() > 1  # the model does change the frames
    for batch in (1, 2, 4, 16):
        out = np.stack(list(enhance_frames(model, frames, batch=batch)))
        np.testing.assert_array_equal(out, expected, err_msg=f"batch {batch}")


@pytest.mark.parametrize("start,count", [(0, 3), (2, 4), (6, 3), (0, 9)])
def test_a_span_is_restored_exactly_as_in_the_whole_clip(start, count):
    from vqe.inference.enhance import restore_span

    frames = textured(9, 16, 24, seed=2)
    model = Weighted([0.05, 0.1, 0.5, 0.15, 0.2])
    np.testing.assert_array_equal(restore_span(model, frames, start, count, batch=2),
                                  reference(model, frames)[start:start + count])
    with pytest.raises(VQEError, match="outside"):
        restore_span(model, frames, 7, 3)


class Counting(Weighted):
    """`Weighted`, counting the windows it is given."""

    windows = 0

    def forward(self, x):
        self.windows += len(x)
        return super().forward(x)


@pytest.mark.parametrize("start,stop,batch", [(0, 4, 3), (3, 7, 2), (5, 9, 4), (0, None, 4), (8, 8, 1)])
def test_start_stop_compute_only_their_own_windows(start, stop, batch):
    frames = textured(9, 16, 24, seed=4)
    model = Counting([0.05, 0.1, 0.5, 0.15, 0.2])
    out = list(enhance_frames(model, frames, batch=batch, start=start, stop=stop))
    expected = reference(model, frames)[start:stop]
    assert len(out) == len(expected) == model.windows - len(frames)  # `reference` ran all 9 windows
    if out:
        np.testing.assert_array_equal(np.stack(out), expected)
    with pytest.raises(VQEError, match="start/stop"):
        list(enhance_frames(model, frames, start=4, stop=2))


def test_default_batch_is_one_window_on_the_cpu_and_four_elsewhere():
    assert default_batch("cpu") == default_batch(torch.device("cpu")) == 1
    assert default_batch("cuda:0") == default_batch(torch.device("cuda")) == 4


def test_streams_its_input():
    frames = textured(20, 8, 8, seed=2)
    n, batch = 2, 3
    consumed = []

    def source():
        for i, f in enumerate(frames):
            consumed.append(i)
            yield f

    outputs = enhance_frames(Pick(n=n), source(), batch=batch)
    for t, out in enumerate(outputs):
        assert len(consumed) <= t + n + batch  # read ahead by at most n + batch frames
        np.testing.assert_array_equal(out, frames[t])
    assert t == len(frames) - 1
    assert list(enhance_frames(Pick(n=n), iter([]))) == []


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_equals_untiled(scale):
    frames = textured(5, 48, 64, seed=3)
    model = IntConv(n=1, scale=scale)
    full = np.stack(list(enhance_frames(model, frames, batch=2)))
    assert full.shape == (5, 48 * scale, 64 * scale, 3) and full.std() > 20  # a non-trivial output
    for tile in (16, 20):
        model.calls = 0
        tiled = np.stack(list(enhance_frames(model, frames, batch=2, tile=tile, tile_overlap=4)))
        assert model.calls > 3 * 4  # several tiles per batch really were run
        np.testing.assert_array_equal(tiled, full, err_msg=f"tile {tile}")
    # with too little context the tile seams do show: the check above has teeth
    seams = np.stack(list(enhance_frames(model, frames, batch=2, tile=16, tile_overlap=0)))
    assert not np.array_equal(seams, full)


def test_bad_frames_parameters_and_model_outputs_are_errors():
    frames = textured(3, 8, 8)
    with pytest.raises(VQEError, match="batch"):
        list(enhance_frames(Pick(), frames, batch=0))
    with pytest.raises(VQEError, match="tile"):
        list(enhance_frames(Pick(), frames, tile=0))
    with pytest.raises(VQEError, match="frame 1: size 10x8"):
        list(enhance_frames(Pick(), [frames[0], np.zeros((8, 10, 3), np.uint8)]))
    with pytest.raises(VQEError, match="uint8"):
        list(enhance_frames(Pick(), frames.astype(np.float32)))
    wrong = Pick(n=1, scale=2)
    wrong.forward = lambda x: x[:, 1]  # claims scale 2 but does not up-scale
    with pytest.raises(VQEError, match="expected"):
        list(enhance_frames(wrong, frames))
    with pytest.raises(VQEError, match="'n'"):
        list(enhance_frames(torch.nn.Identity(), frames))


# ---------------------------------------------------------------- enhance_video


@pytest.mark.parametrize("scale", [1, 2])
def test_video_frame_count_size_and_content(tmp_path, clip_mp4, scale):
    out = tmp_path / "out.mp4"
    summary = enhance_video(clip_mp4, out, Pick(n=1, scale=scale), batch=3, progress=False)
    assert summary["frames"] == 12 and summary["input_size"] == (64, 48)
    assert summary["output_size"] == (64 * scale, 48 * scale) and summary["audio_copied"] is False
    result = read_video(out)
    assert result.shape == (12, 48 * scale, 64 * scale, 3)
    expected = read_video(clip_mp4).repeat(scale, 1).repeat(scale, 2)  # decoded input, up-scaled
    luma = np.array([0.299, 0.587, 0.114])
    error = np.abs((result.astype(float) - expected) @ luma)
    assert error.mean() < 4  # only the crf 18 re-encode differs (its 4:2:0 chroma blurs this harsh texture)
    assert (np.abs((result[1:].astype(float) - expected[:-1]) @ luma)).mean() > 5 * error.mean()  # frames in order
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left


@pytest.mark.parametrize("fps", [30, 12.5])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_frame_rate_and_timestamps_are_kept(tmp_path, clip, fps, suffix):
    src = tmp_path / f"in{suffix}"
    encode(clip, src, EncodeSettings(crf=20, fps=fps))
    out = tmp_path / f"out{suffix}"
    summary = enhance_video(src, out, Pick(n=2), progress=False)
    assert summary["frame_rate"] == fps and probe(out).fps == fps
    _, t_in = frame_times(src)
    tb_out, t_out = frame_times(out)
    assert len(t_out) == len(t_in) == 12
    np.testing.assert_allclose(t_out, t_in, atol=float(tb_out) / 2 + 1e-9)  # equal up to the muxer's clock


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_audio_is_copied_without_reencoding(tmp_path, clip, suffix):
    src = tmp_path / "talk.mp4"
    write_with_audio(src, clip)
    out = tmp_path / f"out{suffix}"
    summary = enhance_video(src, out, Pick(n=1, scale=2), progress=False)
    assert summary["audio_copied"] and summary["audio_codec"] == "aac"
    codec_in, packets_in = audio_packets(src)
    codec_out, packets_out = audio_packets(out)
    assert codec_in == codec_out == "aac" and len(packets_in) > 10
    assert packets_out == packets_in  # the same packets, byte for byte
    assert len(read_video(out)) == len(clip)


def test_audio_the_container_cannot_take_is_left_out(tmp_path, clip):
    src = tmp_path / "talk.mp4"
    write_with_audio(src, clip[:4])
    out = tmp_path / "out.webm"  # WebM takes Opus/Vorbis only
    summary = enhance_video(src, out, Pick(n=1), codec="libvpx-vp9", crf=30, progress=False)
    assert not summary["audio_copied"] and audio_packets(out) == (None, [])
    assert len(read_video(out)) == 4


def test_odd_output_size_is_an_error_naming_the_file(tmp_path):
    src = tmp_path / "odd.mkv"
    write_ffv1(src, textured(3, 47, 63))
    with pytest.raises(VQEError, match=r"out\.mp4: output size 63x47 .* odd"):
        enhance_video(src, tmp_path / "out.mp4", Pick(n=1), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mkv"]
    summary = enhance_video(src, tmp_path / "out.mp4", Pick(n=1, scale=2), progress=False)  # 126x94 is fine
    assert summary["output_size"] == (126, 94)


def test_a_failure_while_writing_leaves_nothing(tmp_path, clip_mp4):
    class Failing(Pick):
        def forward(self, x):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:
                raise VQEError("model blew up")
            return super().forward(x)

    out = tmp_path / "out.mp4"
    with pytest.raises(VQEError, match="blew up"):
        enhance_video(clip_mp4, out, Failing(n=1), batch=2, progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the command line


def test_cli_enhance(tmp_path, clip_mp4, fake_models, capsys):
    model = tmp_path / "my.pt"
    model.write_bytes(b"weights")
    fake_models["model"] = Pick(n=2, scale=2)
    out = tmp_path / "out.mkv"
    assert main(["enhance", str(clip_mp4), "-o", str(out), "--model", str(model), "--device", "cpu",
                 "--batch", "3", "--tile", "32", "--crf", "20", "--preset", "veryfast"]) == 0
    assert fake_models["calls"] == [(str(model), "cpu")]
    line = capsys.readouterr().out
    assert "12 frames" in line and "64x48 -> 128x96" in line and "frames/s" in line
    assert read_video(out).shape == (12, 96, 128, 3)


def test_cli_default_model(tmp_path, clip_mp4, fake_models, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["enhance", str(clip_mp4), "-o", "out.mp4", "--device", "cpu", "-y"]  # -y: out.mp4 is written twice
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqe: error:") and "dvc repro" in err and "--model" in err
    (tmp_path / "models" / "release").mkdir(parents=True)
    order = ["models/stage_a.pt", "models/gan_evh.pt", "models/release/stage_a.pt", "models/release/gan_evh.pt"]
    for path in order:  # each new file outranks the ones before it: released weights, then GAN-EVH first
        (tmp_path / path).write_bytes(b"w")
        assert main(args) == 0
    assert [path for path, _ in fake_models["calls"]] == order
    assert main(args[:2] + ["-o", "x.mp4", "--model", "models/none.pt"]) == 2
    assert "models/none.pt" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated", "corrupt"])
def test_cli_bad_input_exits_2_naming_the_file_and_leaves_no_output(tmp_path, clip_mp4, fake_models, kind, capsys):
    src = tmp_path / f"{kind}.mp4"
    data = clip_mp4.read_bytes()
    if kind == "empty":
        src.write_bytes(b"")
    elif kind == "garbage":
        src.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    elif kind == "truncated":
        src.write_bytes(data[:len(data) // 2])
    elif kind == "corrupt":  # a readable container whose video bitstream is damaged
        damaged = bytearray(data)
        middle = len(damaged) // 2
        damaged[middle - 300:middle + 300] = np.random.default_rng(0).integers(0, 256, 600, np.uint8).tobytes()
        src.write_bytes(bytes(damaged))
    model = tmp_path / "m.pt"
    model.write_bytes(b"w")
    before = sorted(tmp_path.iterdir())
    out = tmp_path / "out" / "result.mp4"
    assert main(["enhance", str(src), "-o", str(out), "--model", str(model), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar, if it started
    assert f"{kind}.mp4" in err and err.startswith("vqe: error:")
    assert not out.exists()
    assert sorted(tmp_path.iterdir()) == before or sorted(tmp_path.iterdir()) == sorted(before + [out.parent])
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*"))


def cli_args(src, out, model, *extra) -> list[str]:
    return ["enhance", str(src), "-o", str(out), "--model", str(model), "--device", "cpu", *extra]


@pytest.mark.parametrize("overwrite", [[], ["-y"], ["--overwrite"]])
def test_cli_never_writes_over_its_input(tmp_path, clip_mp4, fake_models, monkeypatch, capsys, overwrite):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "a.mp4"
    shutil.copy(clip_mp4, src)
    model = tmp_path / "m.pt"
    model.write_bytes(b"w")
    (tmp_path / "sub").mkdir()
    os.symlink(src, tmp_path / "link.mp4")
    os.link(src, tmp_path / "hard.mp4")
    digest = sha256(src)
    spellings = ["a.mp4", str(src), "./a.mp4", "./sub/../a.mp4", "nosub/../a.mp4", f"{tmp_path}/./sub/../a.mp4",
                 "link.mp4", "./sub/../link.mp4", "hard.mp4"]
    cases = [("a.mp4", out) for out in spellings] + [("link.mp4", "a.mp4"), ("hard.mp4", "link.mp4")]
    for inp, out in cases:
        before = snapshot(tmp_path)
        assert main(cli_args(inp, out, model, *overwrite)) == 2, (inp, out)
        err = capsys.readouterr().err
        assert err.startswith("vqe: error: -o/--output") and "input" in err, err
        assert sha256(src) == digest and snapshot(tmp_path) == before
    model_mkv = tmp_path / "weights.mkv"  # nor over the model (it is an input too)
    model_mkv.write_bytes(b"weights")
    assert main(cli_args("a.mp4", "./sub/../weights.mkv", model_mkv, *overwrite)) == 2
    assert "input" in capsys.readouterr().err and model_mkv.read_bytes() == b"weights"
    assert fake_models["calls"] == []  # all refused before a model was loaded


def test_cli_replaces_an_existing_output_only_when_told(tmp_path, clip_mp4, fake_models, capsys):
    model = tmp_path / "m.pt"
    model.write_bytes(b"w")
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    assert main(cli_args(clip_mp4, out, model)) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqe: error: -o/--output") and "exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"precious" and fake_models["calls"] == []
    for flag in ("-y", "--overwrite"):
        out.write_bytes(b"old")
        assert main(cli_args(clip_mp4, out, model, flag)) == 0
        assert read_video(out).shape == (12, 48, 64, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "out.mp4"]  # no temporary file left


@pytest.mark.parametrize("out, message", [("out.avi", "suffix"), ("folder", "directory"), ("dead.mp4", "exists")])
def test_cli_bad_outputs_are_refused_before_the_model_loads(tmp_path, clip_mp4, fake_models, capsys, out, message):
    model = tmp_path / "m.pt"
    model.write_bytes(b"w")
    (tmp_path / "folder").mkdir()
    os.symlink(tmp_path / "nowhere.mp4", tmp_path / "dead.mp4")  # a dangling symlink is an existing output too
    before = snapshot(tmp_path)
    assert main(cli_args(clip_mp4, tmp_path / out, model)) == 2
    assert message in capsys.readouterr().err
    assert snapshot(tmp_path) == before and fake_models["calls"] == []


def test_enhance_video_refuses_to_write_over_its_input(tmp_path, clip_mp4):
    src = tmp_path / "a.mp4"
    shutil.copy(clip_mp4, src)
    os.symlink(src, tmp_path / "link.mp4")
    os.link(src, tmp_path / "hard.mp4")
    digest = sha256(src)
    for out in (src, tmp_path / "link.mp4", tmp_path / "hard.mp4", Path(os.path.join(tmp_path, "x", "..", "a.mp4"))):
        with pytest.raises(VQEError, match="is the input"):
            enhance_video(src, out, Pick(n=1), progress=False)
        assert sha256(src) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "hard.mp4", "link.mp4"]
    with pytest.raises(VQEError, match=r"crf 52 is outside 0\.\.51"):
        enhance_video(src, tmp_path / "out.mp4", Pick(n=1), crf=52, progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_amp_on_the_cpu_is_bf16_close_to_fp32_or_a_clear_error(monkeypatch):
    import vqe.inference.enhance
    from vqe.inference.export import bench_frames
    from vqe.models.build import load_model

    model = load_model("models/release/nogan_fast.pt")
    frames = bench_frames(64, 48, 3)
    if vqe.inference.enhance.cpu_bf16():
        fp32 = np.stack(list(enhance_frames(model, frames, batch=1))).astype(int)
        bf16 = np.stack(list(enhance_frames(model, frames, batch=1, amp=True)))
        diff = np.abs(fp32 - bf16)
        assert 0 < diff.max() <= 8 and diff.mean() < 0.5  # bf16 really ran, and stayed near fp32
    monkeypatch.setattr(vqe.inference.enhance, "cpu_bf16", lambda: False)
    with pytest.raises(VQEError, match="no bf16 support.*without --amp"):
        enhance_frames(model, frames, amp=True)


def test_enhance_compile_gives_the_eager_frames(tmp_path):
    from vqe.inference.export import bench_frames

    clip = tmp_path / "in.mkv"
    encode(bench_frames(64, 48, 5), clip, EncodeSettings(crf=18))
    outs = []
    for extra in ([], ["--compile"]):
        out = tmp_path / f"out{len(extra)}.mkv"
        assert main(["enhance", str(clip), "-o", str(out), "--model", "models/release/stage_a.pt", "--crf", "0",
                     *extra]) == 0
        outs.append(read_video(out).astype(int))
    assert outs[0].shape == (5, 96, 128, 3) and np.abs(outs[0] - outs[1]).max() <= 2
