import numpy as np
import yaml

from vqe.cli import main
from vqe.data.codec import EncodeSettings, encode
from vqe.data.video import probe, read_video


def test_compose_writes_a_valid_profile(tmp_path):
    out = tmp_path / "params.yaml"
    assert main(["compose", "smoke", "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["profile_name"] == "smoke"


def test_degrade_a_users_video(tmp_path, moving_frames):
    src = tmp_path / "in.mp4"
    encode(moving_frames, src, EncodeSettings(crf=10, fps=25))
    out = tmp_path / "out.mp4"
    assert main(["degrade", str(src), "-o", str(out), "--kbps", "40"]) == 0
    frames = read_video(out)
    assert frames.shape == moving_frames.shape and probe(out).fps == 25
    assert (tmp_path / "out.stream.mkv").exists()
    assert np.abs(frames.astype(int) - moving_frames).mean() > 1  # it really is degraded


def test_bad_input_exits_nonzero_with_the_file_named_and_no_output(tmp_path, capsys):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    out = tmp_path / "out.mp4"
    assert main(["degrade", str(bad), "-o", str(out), "--kbps", "40"]) == 2
    assert "corrupt.mp4" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [bad]


def test_unknown_codec_and_config_key_exit_nonzero(tmp_path, moving_frames, capsys):
    src = tmp_path / "in.mp4"
    encode(moving_frames, src, EncodeSettings(crf=10))
    assert main(["degrade", str(src), "-o", str(tmp_path / "o.mp4"), "--kbps", "40", "--codec", "h263x"]) == 2
    assert "h263x" in capsys.readouterr().err
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  bogus: 1\n")
    assert main(["synthesise", "--params", str(params)]) == 2
    assert "synth.bogus" in capsys.readouterr().err
