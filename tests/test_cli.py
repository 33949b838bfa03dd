import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import vqe.cli as cli
from vqe.cli import main, parse_args
from vqe.data.codec import EncodeSettings, encode
from vqe.data.video import probe, read_video
from vqe.util.errors import VQEError

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str]) -> int:
    """`vqe argv` in-process: main's return value, or the exit status of an argparse error or --help."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    assert run(["degrade", str(src), "-o", str(tmp_path / "o.mp4"), "--kbps", "40", "--codec", "h263x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqe degrade: error: argument --codec") and "h263x" in err
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  bogus: 1\n")
    assert main(["synthesise", "--params", str(params)]) == 2
    assert "synth.bogus" in capsys.readouterr().err


# ---------------------------------------------------------------- bad option values


# (command, option, whether 0 is invalid); every numeric option of every command
NUMERIC = [("degrade", "--kbps", True), ("degrade", "--crf", False), ("degrade", "--scale", True),
           ("degrade", "--intra-period", True), ("enhance", "--batch", True), ("enhance", "--tile", True),
           ("enhance", "--crf", False), ("enhance", "--adapt", True), ("enhance", "--adapt-lpips", False),
           ("release", "--threads", True), ("bench", "--batches", True), ("bench", "--frames", True),
           ("bench", "--repeats", True), ("bench", "--threads", True), ("export", "--size", True)]
BAD = ["-5", "nan", "inf", "-inf", "1e12", str(10 ** 12), "1000000000", "abc", "", "2.5"]


def test_every_numeric_option_is_in_the_table():
    found = {(name, opt) for name, p in subparsers().items() for a in p._actions for opt in a.option_strings
             if opt.startswith("--") and a.type is not None}  # the options with a type= are the numeric ones
    assert found == {(name, opt) for name, opt, _ in NUMERIC}


@pytest.mark.parametrize("command, option, value",
                         [(c, o, v) for c, o, zero in NUMERIC for v in BAD + (["0"] if zero else [])
                          if not (o in ("--kbps", "--adapt", "--adapt-lpips") and v == "2.5")])
def test_a_bad_number_is_a_usage_error_before_any_work(tmp_path, monkeypatch, capsys, command, option, value):
    def not_called(args):
        raise AssertionError(f"{command} ran with {option} {value!r}")

    monkeypatch.setattr(cli, f"cmd_{command}", not_called)
    out = tmp_path / "out.mp4"
    rate = [] if option in ("--kbps", "--crf") else ["--kbps", "40"]
    argv = [command, str(tmp_path / "in.mp4"), "-o", str(out)] + (rate if command == "degrade" else [])
    # `--opt=value`, and `--opt value` where argparse can take the value so (not for "" or "-inf")
    for form in [[f"{option}={value}"]] + ([[option, value]] if value not in ("", "-inf") else []):
        assert run(argv + form) == 2, form
        err = capsys.readouterr().err
        assert err.startswith(f"vqe {command}: error: argument {option}"), err
        assert "Traceback" not in err
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, codec, crf, ok", [
    ("degrade", "libx264", 51, True), ("degrade", "libx264", 52, False), ("degrade", "libx265", 52, False),
    ("degrade", "libvpx-vp9", 63, True), ("degrade", "libsvtav1", 63, True), ("degrade", "libvpx-vp9", 64, False),
    ("enhance", "libx264", 0, True), ("enhance", "libx264", 52, False), ("enhance", "libx265", 51, True),
    ("enhance", "libvpx-vp9", 63, True), ("enhance", "libsvtav1", 64, False)])
def test_crf_is_checked_against_the_codec(capsys, command, codec, crf, ok):
    preset = ["--preset", "medium"] if codec in ("libx264", "libx265") else []
    argv = [command, "in.mp4", "-o", "out.mp4", "--codec", codec, "--crf", str(crf), *preset]
    if ok:
        assert parse_args(argv).crf == crf
    else:
        with pytest.raises(SystemExit) as e:
            parse_args(argv)
        assert e.value.code == 2
        assert capsys.readouterr().err.startswith(f"vqe {command}: error: argument --crf: {crf}")


def test_the_library_checks_crf_too():
    from vqe.inference.enhance import encoder_options

    assert encoder_options("libvpx-vp9", 63, "medium")["crf"] == "63"
    for codec, crf in (("libx264", 52), ("libx264", -1), ("libsvtav1", 64), ("libx264", 18.5)):
        with pytest.raises(VQEError, match="crf"):
            encoder_options(codec, crf, "medium")


@pytest.mark.parametrize("argv, option", [
    (["enhance", "a.mp4", "-o", "b.mp4", "--preset", "fastest"], "--preset"),
    (["degrade", "a.mp4", "-o", "b.mp4", "--kbps", "40", "--codec", "libx265", "--preset", "nope"], "--preset"),
    (["enhance", "a.mp4", "-o", "b.mp4", "--codec", "libsvtav1", "--preset", "14"], "--preset"),
    (["enhance", "a.mp4", "-o", "b.mp4", "--codec", "libx266"], "--codec"),
    (["enhance", "a.mp4", "-o", "b.mp4", "--device", "tpu"], "--device"),
    (["degrade", "a.mp4", "-o", "b.mp4", "--kbps", "40", "--crf", "20"], "--crf"),
    (["degrade", "a.mp4", "-o", "b.mp4"], "--kbps"),
    (["enhance", "a.mp4"], "-o/--output"),
])
def test_other_bad_arguments_are_usage_errors(tmp_path, monkeypatch, capsys, argv, option):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vqe {argv[0]}: error:") and option in err.splitlines()[0]
    assert list(tmp_path.iterdir()) == []


def test_presets_that_the_codec_ignores_are_accepted():
    assert parse_args(["enhance", "a.mp4", "-o", "b.mp4", "--codec", "libsvtav1", "--preset", "8"]).preset == "8"
    assert parse_args(["degrade", "a.mp4", "-o", "b.webm", "--kbps", "40", "--codec", "libvpx-vp9",
                       "--preset", "whatever"]).codec == "libvpx-vp9"


def test_the_installed_command_reports_a_bad_number_without_a_traceback(tmp_path):
    exe = Path(sys.executable).parent / "vqe"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vqe.cli"]
    proc = subprocess.run(cmd + ["degrade", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"),
                                 "--kbps", "-5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("vqe degrade: error: argument --kbps: -5")
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- --help


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["provision", "synthesise", "degrade", "train", "release", "enhance", "compose"])
def test_help_describes_every_argument_and_its_default(command, capsys):
    assert run([command, "--help"]) == 0
    text = capsys.readouterr().out
    parser = subparsers()[command]
    assert parser.description and parser.description.split()[0] in text
    formatter = parser._get_formatter()
    for action in parser._actions:
        names = action.option_strings or [action.metavar or action.dest]
        if isinstance(action.choices, (list, tuple)) and not action.option_strings:
            names = ["{" + ",".join(action.choices) + "}"]
        assert all(name in text for name in names), (command, names)
        assert action.help, f"vqe {command} {names[0]}: no help text"
        block = formatter._format_action(action)
        has_default = action.default not in (None, False, argparse.SUPPRESS)
        if has_default:
            assert "default" in block and str(action.default) in block, (command, names, block)


# ---------------------------------------------------------------- never writing over the input


@pytest.fixture
def small_video(tmp_path, moving_frames) -> Path:
    src = tmp_path / "a.mp4"
    encode(moving_frames[:6], src, EncodeSettings(crf=20, fps=25))
    return src


def output_spellings(src: Path) -> list[str]:
    d = src.parent
    (d / "sub").mkdir(exist_ok=True)
    os.symlink(src, d / "link.mp4")
    os.link(src, d / "hard.mp4")
    return [str(src), os.path.relpath(src), os.path.join(d, "sub", "..", src.name),
            os.path.join(d, "nosub", "..", src.name), os.path.join(".", "sub", "..", src.name),
            os.path.join(d, ".", src.name), str(d / "link.mp4"), str(d / "hard.mp4")]


@pytest.mark.parametrize("overwrite", [[], ["-y"], ["--overwrite"]])
def test_degrade_never_writes_over_its_input(tmp_path, small_video, monkeypatch, capsys, overwrite):
    monkeypatch.chdir(tmp_path)
    digest = sha256(small_video)
    for out in output_spellings(small_video):
        before = sorted(tmp_path.rglob("*"))
        assert run(["degrade", str(small_video), "-o", out, "--crf", "30", *overwrite]) == 2, out
        err = capsys.readouterr().err
        assert err.startswith("vqe: error: -o/--output") and "input" in err, err
        assert sha256(small_video) == digest and sorted(tmp_path.rglob("*")) == before
    # the bitstream side file <output>.stream.mkv may not be the input either
    side = tmp_path / "b.stream.mkv"
    shutil.copy(small_video, side)
    digest = sha256(side)
    assert run(["degrade", str(side), "-o", str(tmp_path / "b.mp4"), "--crf", "30", *overwrite]) == 2
    assert "side file" in capsys.readouterr().err and sha256(side) == digest
    assert not (tmp_path / "b.mp4").exists()


def test_degrade_replaces_an_existing_output_only_when_told(tmp_path, small_video, capsys):
    out, side = tmp_path / "out.mp4", tmp_path / "out.stream.mkv"
    for existing in (out, side):
        existing.write_bytes(b"precious")
        assert run(["degrade", str(small_video), "-o", str(out), "--crf", "30"]) == 2
        assert "exists" in capsys.readouterr().err and existing.read_bytes() == b"precious"
        existing.unlink()
    out.write_bytes(b"old")
    side.write_bytes(b"old")
    assert run(["degrade", str(small_video), "-o", str(out), "--crf", "30", "-y"]) == 0
    assert read_video(out).shape == (6, 64, 96, 3) and read_video(side).shape == (6, 32, 48, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "out.mp4", "out.stream.mkv"]


def test_degrade_that_fails_late_leaves_no_side_file(tmp_path, small_video, monkeypatch, capsys):
    real = cli.encode

    def failing(frames, path, settings):
        if not str(path).endswith(".stream.mkv"):
            raise VQEError("disk on fire")
        return real(frames, path, settings)

    monkeypatch.setattr(cli, "encode", failing)  # the encode `vqe degrade` calls
    assert run(["degrade", str(small_video), "-o", str(tmp_path / "out.mp4"), "--crf", "30"]) == 2
    assert "disk on fire" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_degrade_rejects_an_unknown_suffix_before_encoding(tmp_path, small_video, capsys):
    assert run(["degrade", str(small_video), "-o", str(tmp_path / "out.avi"), "--crf", "30"]) == 2
    assert "suffix" in capsys.readouterr().err and [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_compose_replaces_params_but_never_a_config_source(tmp_path, capsys):
    out = tmp_path / "params.yaml"
    out.write_text("old: 1\n")
    assert main(["compose", "smoke", "-o", str(out)]) == 0  # the default: DVC workflows rely on it
    assert yaml.safe_load(out.read_text())["profile_name"] == "smoke"
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    source = conf / "profile" / "smoke.yaml"
    digest = sha256(source)
    assert main(["compose", "smoke", "--conf", str(conf), "-o", os.path.join(conf, "x", "..", "profile",
                                                                         "smoke.yaml")]) == 2
    assert "input" in capsys.readouterr().err and sha256(source) == digest
    assert main(["compose", "smoke", "-o", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err


def test_train_names_the_phases_and_baseline_rows_for_an_unknown_one(capsys):
    assert run(["train", "nonesuch"]) != 0
    err = capsys.readouterr().err
    assert "unknown phase or baseline row 'nonesuch'" in err and "stage_a" in err and "galteri" in err


def test_train_runs_a_baseline_row_by_its_id(tmp_path, smoke_manifest, capsys):
    import yaml

    from vqe.config import compose
    from vqe.models.build import load_model

    data = compose("smoke", ROOT / "conf")
    data["synth"]["out_dir"] = str(smoke_manifest.root)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    assert run(["train", "edvr", "baselines.train.iters=2", "--params", str(tmp_path / "params.yaml"),
                "--out-dir", str(tmp_path), "--model-out", str(tmp_path / "edvr.pt"), "--no-progress"]) == 0
    assert load_model(tmp_path / "edvr.pt").arch == "edvr"
    assert json.loads((tmp_path / "results" / "train" / "edvr.json").read_text())["iterations"] == 2
