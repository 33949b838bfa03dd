"""`vqe bench` (vqe.inference.bench): FLOPs counted by hand, the pass-through baseline, precisions, memory, and one real
run of the released fast restorer whose numbers must agree with each other."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vqe.cli import main
from vqe.inference.bench import (
    BenchConfig,
    PassThrough,
    PeakMemory,
    bench,
    count_flops,
    markdown,
    matmul_rates,
    roofline,
    summary_rows,
    supported_dtypes,
    windows,
)
from vqe.inference.export import bench_frames
from vqe.util.errors import VQEError

RELEASED_FAST = "models/release/nogan_fast.pt"


class OneConv(torch.nn.Module):
    n, scale = 1, 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(9, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.flatten(1, 2))


def test_flops_of_a_convolution_counted_by_hand():
    x = torch.zeros(1, 3, 3, 10, 12)  # a window of 3 frames: 9 input channels
    # 8 outputs x 9 inputs x 3 x 3 taps per pixel, 120 pixels, a multiply-add is 2 FLOPs
    assert count_flops(OneConv(), x, None) == 2 * 8 * 9 * 9 * 120


def test_pass_through_is_a_nearest_neighbour_up_scaling_of_the_centre_frame():
    x = torch.rand(2, 1, 3, 4, 5)
    y = PassThrough(2)(x)
    assert y.shape == (2, 3, 8, 10) and torch.equal(y[..., ::2, ::2], x[:, 0]) and torch.equal(y[..., 1::2, 1::2], x[:, 0])
    assert torch.equal(PassThrough(1)(x), x[:, 0])


def test_bench_frames_are_deterministic_and_pan():
    a, b = bench_frames(64, 48, 3), bench_frames(64, 48, 3)
    assert a.shape == (3, 48, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert np.array_equal(a[1, :-2, :-2], a[0, 2:, 2:])  # 2 px a frame, down and right


def test_windows_repeat_the_first_frame_at_the_clip_start():
    frames = np.stack([np.full((4, 6, 3), 10 * t, np.uint8) for t in range(3)])
    x, side = windows(OneConv(), frames, 2, torch.device("cpu"), np.arange(3.0)[:, None])
    assert x.shape == (2, 3, 3, 4, 6)
    assert [round(float(v) * 255) for v in x[:, :, 0, 0, 0].flatten()] == [0, 0, 10, 0, 10, 20]
    assert side[:, :, 0].tolist() == [[0, 0, 1], [0, 1, 2]]


def test_precisions_the_cpu_skips_say_why():
    run, skipped = supported_dtypes(torch.device("cpu"), ["fp32", "bf16", "fp16"])
    assert run == ["fp32", "bf16"] and "CUDA only" in skipped["fp16"]
    with pytest.raises(VQEError, match="unknown precision.*int8"):
        supported_dtypes(torch.device("cpu"), ["int8"])


def test_matmul_rates_are_plausible_flop_rates_and_the_roofline_is_the_faster():
    rates = matmul_rates(torch.device("cpu"), "fp32", 256)
    assert set(rates) == {"matmul", "conv1x1"}
    assert all(1e8 < r < 1e14 for r in rates.values())  # FLOP/s: above a 1990s PC, below any CPU
    assert roofline(rates) == max(rates.values())


def test_peak_memory_sees_a_large_temporary():
    with PeakMemory(torch.device("cpu")) as mem:
        x = torch.ones(64 * 2 ** 20 // 4)  # 64 MiB, written so that it is resident
        x.add_(1)
        del x
    assert 48 * 2 ** 20 < mem.peak_bytes < 512 * 2 ** 20


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bench_of_the_released_fast_restorer_is_self_consistent(one_thread):
    cfg = BenchConfig(sizes=("360p",), device="cpu", dtypes=("fp32",), batches=(1, 2), frames=3, repeats=1)
    result = bench([RELEASED_FAST], cfg)
    assert result["environment"]["threads"] == 1 and result["skipped_dtypes"] == {}
    model = result["models"][0]
    assert model["scale"] == 2 and model["parameters"] == 1117827
    cases = model["cases"]
    assert [(c["size"], c["input_size"], c["batch"]) for c in cases] == [("360p", (320, 180), 1), ("360p", (320, 180), 2)]
    for c in cases:
        assert c["fps"] == pytest.approx(c["batch"] / float(np.median(c["runs_s"])))
        assert c["ms_per_frame"] == pytest.approx(1000 / c["fps"])
        assert c["roofline_ratio"] == pytest.approx(c["flops_per_frame"] * c["fps"] / result["matmul_flops_per_s"]["fp32"])
    assert cases[0]["flops_per_frame"] == cases[1]["flops_per_frame"] > 1e9  # ~2.7 GFLOP a frame
    assert {e["batch"] for e in model["enhance"]} <= {1, 2} and 1 in {e["batch"] for e in model["enhance"]}
    for e in model["enhance"]:
        assert e["fraction_of_decode_encode"] == pytest.approx(e["fps"] / e["decode_encode_fps"])
    assert sum(o["share"] for o in model["operators"]["360p"]) <= 1 + 1e-9
    row = next(summary_rows(result))
    assert row["fps_best"] == max(c["fps"] for c in cases)
    table = markdown(result)
    assert "| nogan_fast | 360p | fp32 |" in table and "time by operator" in table


def test_cli_writes_json_markdown_and_figure(tmp_path, one_thread):
    out = tmp_path / "b" / "bench.json"
    fig = tmp_path / "f" / "bench.png"
    assert main(["bench", RELEASED_FAST, "--sizes", "360p", "--dtypes", "fp32", "--batches", "1", "--frames", "2",
                 "--repeats", "1", "--no-profile", "--no-enhance", "--threads", "1", "--out", str(out),
                 "--figure", str(fig)]) == 0
    data = json.loads(out.read_text())
    assert data["models"][0]["enhance"] == [] and data["models"][0]["operators"] == {}
    assert out.with_suffix(".md").read_text().startswith("`vqe bench` on cpu")
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert math.isnan(next(summary_rows(data))["enhance_fps"])


def test_cli_names_a_missing_model(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "b.json")]) == 2
    assert "nope.pt: model file not found" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()
