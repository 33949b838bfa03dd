"""The full generator G = G_B(G_A(.)): identity Stage B at the start of phase 2, sequence windows for the
temporal losses, the reversed (ping-pong) pass, save/load, and the "no Stage B" switch."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
from conftest import profile_params

from vqe.models.build import load_model, save_model
from vqe.models.parts.blocks import sequence_windows
from vqe.models.stage_a import StageA
from vqe.models.stage_b import Generator
from vqe.train.core.amp import autocaster
from vqe.train.gan import generate

A = replace(profile_params().stage_a.model, mode="sra", n=1, align_channels=[8], offset_groups=2, extract_blocks=0,
            channels=8, blocks=1, growth=4)
B = replace(profile_params().stage_b.model, channels=4, blocks=1)


def _trained_stage_a() -> StageA:
    torch.manual_seed(0)
    model = StageA(**asdict(A), scale=2)
    torch.nn.init.normal_(model.conv_last.weight, std=0.01)  # not the identity any more
    return model.eval()


def test_phase2_starts_from_stage_a_exactly():
    stage_a = _trained_stage_a()
    gen = Generator.from_stage_a(stage_a, asdict(B)).eval()
    x = torch.rand(2, 3, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(gen(x), stage_a(x))  # Stage B starts as the identity (zero last conv)
    assert gen.n == 1 and gen.scale == 2 and gen.config["stage_b"] == {"enabled": True, "channels": 4, "blocks": 1}


def test_sequence_windows_hold_each_frames_window():
    lq = torch.arange(7.0).view(1, 7, 1, 1, 1).expand(2, 7, 3, 2, 2)  # frame i has value i
    w = sequence_windows(lq, n=2)  # k = 3 windows of 5 frames
    assert w.shape == (2, 3, 5, 3, 2, 2)
    assert w[0, :, :, 0, 0, 0].tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]]
    with pytest.raises(ValueError, match="at least 5 frames"):
        sequence_windows(lq[:, :4], n=2)


def test_generate_runs_every_window_and_the_reversed_centre_in_one_batch():
    """What phase 2 and NoGAN train on: one output per clip frame, and (ping-pong) the centre frame
    again from its time-reversed window."""
    gen = Generator.from_stage_a(_trained_stage_a(), asdict(B)).eval()
    cpu = torch.device("cpu")
    lq, gt = torch.rand(2, 5, 3, 8, 8), torch.rand(2, 3, 3, 16, 16)  # n = 1: 3 output frames
    with torch.no_grad():
        clip = generate(gen, 1, (lq, gt), cpu, autocaster(cpu, None), pingpong=True)
        assert clip.fake.shape == (2, 3, 3, 16, 16) and torch.equal(clip.real, gt) and torch.equal(clip.lq, lq)
        for j in range(3):
            assert torch.allclose(clip.fake[:, j], gen(lq[:, j:j + 3]), atol=1e-6)
        assert torch.allclose(clip.reversed_centre, gen(lq[:, 1:4].flip(1)), atol=1e-6)
        # the model is not time-symmetric: ping-pong has work to do
        assert not torch.allclose(clip.fake[:, 1], clip.reversed_centre)
        single = generate(gen, 1, (lq[:, :3], gt[:, 0]), cpu, autocaster(cpu, None), pingpong=False)
        assert single.real.shape == (2, 1, 3, 16, 16) and single.reversed_centre is None  # frames_out = 1
        assert torch.allclose(single.fake[:, 0], clip.fake[:, 0], atol=1e-6)


def test_generator_round_trips_through_save_and_load(tmp_path):
    gen = Generator.from_stage_a(_trained_stage_a(), asdict(B))
    torch.nn.init.normal_(gen.stage_b.conv_last.weight, std=0.01)
    save_model(tmp_path / "g.pt", gen, meta={"profile": "test"})
    back = load_model(tmp_path / "g.pt")
    x = torch.rand(1, 3, 3, 9, 11)
    with torch.no_grad():  # loaded channels-last on the CPU: the same model up to float rounding
        torch.testing.assert_close(back(x), gen.eval()(x), rtol=0, atol=1e-5)
    assert back.meta == {"profile": "test"} and back.arch == "generator"


def test_without_stage_b_the_generator_is_stage_a():
    stage_a = _trained_stage_a()
    gen = Generator.from_stage_a(stage_a, asdict(replace(B, enabled=False))).eval()
    assert gen.stage_b is None
    x = torch.rand(1, 3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(gen(x), stage_a(x))
