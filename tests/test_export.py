"""`vqe export` (vqe.inference.export): ONNX files that onnxruntime runs to PyTorch's numbers on real frames, for the fast
restorer, GAN-EVH and a PCD (deformable) Stage A; the onnxruntime model inside `vqe enhance` and `vqe bench`."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf

from vqe.cli import main
from vqe.config import StageAModel
from vqe.data.codec import EncodeSettings, encode
from vqe.data.video import read_video
from vqe.inference.bench import BenchConfig, bench
from vqe.inference.enhance import enhance_frames
from vqe.inference.export import (
    TOLERANCE,
    OnnxModel,
    bench_frames,
    export_onnx,
    reference_windows,
)
from vqe.models.build import build_model, load_model, save_model
from vqe.util.errors import VQEError

W, H = 64, 48
RELEASED = {"fast": "models/release/nogan_fast.pt", "gan_evh": "models/release/gan_evh.pt"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple]:
    out = tmp_path_factory.mktemp("onnx")
    return {name: (path, out / f"{name}.onnx", export_onnx(path, out / f"{name}.onnx", W, H))
            for name, path in RELEASED.items()}


@pytest.mark.parametrize("name", list(RELEASED))
def test_onnxruntime_restores_real_frames_as_pytorch_does(exported, name):
    src, path, report = exported[name]
    assert report["max_abs_diff"] <= TOLERANCE and report["input_size"] == [W, H]
    onnx_model, torch_model = OnnxModel(path), load_model(src)
    assert (onnx_model.n, onnx_model.scale) == (torch_model.n, torch_model.scale)
    x = reference_windows(torch_model.n, W, H, batch=3)  # another batch size than the export's
    with torch.inference_mode():
        expected = torch_model(x)
    got = onnx_model(x)
    assert got.shape == expected.shape == (3, 3, H * 2, W * 2)
    assert float((got - expected).abs().max()) <= TOLERANCE
    assert float((expected - x[:, torch_model.n].repeat_interleave(2, -1).repeat_interleave(2, -2)).abs().mean()) > 1e-3


def test_the_export_records_the_model_contract(exported):
    src, path, _ = exported["gan_evh"]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["vqe_n"] == "2" and meta["vqe_scale"] == "2" and meta["vqe_arch"] == "generator"
    assert (meta["vqe_width"], meta["vqe_height"]) == (str(W), str(H)) and int(meta["vqe_flops_per_frame"]) > 0


def test_an_input_of_another_size_names_the_export_size(exported):
    model = OnnxModel(exported["fast"][1])
    with pytest.raises(VQEError, match=r"exported for windows of 1 frames of 64x48.*--size 80x48"):
        model(torch.zeros(1, 1, 3, 48, 80))


def test_vqe_enhance_runs_an_onnx_model_like_the_pytorch_one(exported, tmp_path):
    src, path, _ = exported["gan_evh"]
    frames = bench_frames(W, H, 6)
    clip = tmp_path / "in.mkv"
    encode(frames, clip, EncodeSettings(crf=18))
    decoded = read_video(clip)
    a = np.stack(list(enhance_frames(load_model(src), decoded, batch=2)))
    b = np.stack(list(enhance_frames(OnnxModel(path), decoded, batch=2)))
    assert a.shape == b.shape == (6, H * 2, W * 2, 3)
    assert np.abs(a.astype(int) - b).max() <= 1  # the same up to one rounding step
    assert main(["enhance", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(path)]) == 0
    assert read_video(tmp_path / "out.mp4").shape == (6, H * 2, W * 2, 3)


def test_a_pcd_stage_a_exports_through_our_deformable_convolution(tmp_path):
    torch.manual_seed(0)
    paper = OmegaConf.to_container(OmegaConf.load("conf/stage_a/default.yaml"))["model"]  # the paper's Stage A
    cfg = StageAModel(**{**paper, "channels": 8, "blocks": 1, "align_channels": [8, 8, 8], "offset_groups": 2})
    assert cfg.align == "pcd"
    model = build_model("stage_a", dataclasses.asdict(cfg), scale=2)
    for p in model.parameters():  # random offsets and output: the untrained model would be a plain up-scaling
        torch.nn.init.normal_(p, std=0.05)
    save_model(tmp_path / "pcd.pt", model)
    report = export_onnx(tmp_path / "pcd.pt", tmp_path / "pcd.onnx", W, H)
    assert 0 < report["max_abs_diff"] <= TOLERANCE


def test_bench_times_an_onnx_export_at_its_own_size_only(exported, monkeypatch):
    import vqe.inference.bench

    monkeypatch.setitem(vqe.inference.bench.SIZES, "tiny", (W * 2, H * 2))
    cfg = BenchConfig(sizes=("tiny", "360p"), device="cpu", dtypes=("fp32", "bf16"), batches=(1,), frames=2,
                      repeats=1, enhance=False)
    model = bench([str(exported["fast"][1])], cfg)["models"][0]
    assert [(c["size"], c["dtype"]) for c in model["cases"]] == [("tiny", "fp32")]
    assert model["arch"] == "onnx:fast" and model["cases"][0]["flops_per_frame"] > 0
    assert any("an ONNX export runs in fp32" in s for s in model["skipped"])
    assert any("exported for 64x48 input, not 320x180" in s for s in model["skipped"])


def test_a_model_that_reads_the_bitstream_is_refused(tmp_path):
    from vqe.models.mfqe import MFQE

    save_model(tmp_path / "mfqe.pt", MFQE(2, n=2, channels=4, dense=3, mc_channels=4, detector_hidden=4))
    with pytest.raises(VQEError, match="mfqe reads side information from the bitstream"):
        export_onnx(tmp_path / "mfqe.pt", tmp_path / "mfqe.onnx", W, H)
    assert not (tmp_path / "mfqe.onnx").exists()


def test_cli_export_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "none.pt: model file not found" in capsys.readouterr().err
    assert main(["export", RELEASED["fast"], "-o", str(tmp_path / "x.pt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", RELEASED["fast"], "-o", str(tmp_path / "x.onnx"), "--size", "64by48"])
    assert not list(tmp_path.iterdir())
