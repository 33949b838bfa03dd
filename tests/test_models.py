"""Stage A and its parts: shapes in every mode, identity at initialisation, save/load, optimiser groups."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F
from conftest import profile_params

from vqe.config import StageAModel
from vqe.models.build import build_model, load_model, save_model
from vqe.models.parts.attention import ECBAM, ChannelAttention, SpatialAttention
from vqe.models.parts.rrdb import RRDB, ResidualBlock
from vqe.models.stage_a import LearnedUpsample, StageA
from vqe.util.errors import VQEError

SMALL = dict(align_channels=[8, 8, 8], offset_groups=4, extract_blocks=1, channels=8, blocks=1, growth=4)


def small(**kw) -> StageAModel:
    return replace(profile_params().stage_a.model, **{**SMALL, **kw})


@pytest.mark.parametrize("mode,scale,base,h,w", [
    ("pp", 2, "bicubic", 24, 32),   # PP ignores the data scale: same size out
    ("pp", 1, "bicubic", 30, 42),   # sizes not divisible by the pyramid's 4: padded inside
    ("sra", 2, "bicubic", 16, 20),
    ("sra", 4, "bicubic", 12, 16),
    ("sra", 2, "learned", 15, 21),
])
def test_shapes_in_every_mode(mode, scale, base, h, w):
    torch.manual_seed(0)
    model = StageA(**asdict(small(mode=mode, base=base)), scale=scale)
    out = model(torch.rand(2, 5, 3, h, w))
    s = scale if mode == "sra" else 1
    assert model.scale == s
    assert out.shape == (2, 3, h * s, w * s)


RECIPES = [dict(align="pcd", block="rrdb", tail="hr"), dict(align="stack", block="residual", tail="shuffle"),
           dict(align="stack", block="rrdb", tail="hr"), dict(align="pcd", block="residual", tail="shuffle")]


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("mode,scale", [("sra", 2), ("pp", 1)])
def test_every_recipe_switch_combination_runs_and_starts_at_its_base(recipe, mode, scale):
    torch.manual_seed(0)
    model = StageA(**asdict(small(mode=mode, **recipe)), scale=scale)
    x = torch.rand(2, 5, 3, 14, 18)
    out = model(x)
    assert out.shape == (2, 3, 14 * scale, 18 * scale)
    assert torch.allclose(out, model.base(x[:, 2]), atol=1e-6)
    assert (model.align is None) == (recipe["align"] == "stack")
    assert model.offset_mean() == 0.0


def test_stack_recipe_convs_all_run_at_the_decoded_size():
    """`tail: shuffle` keeps every conv at the input size: only the pixel shuffle changes the size."""
    model = StageA(**asdict(small(mode="sra", align="stack", block="residual", tail="shuffle", attention=False)), scale=2)
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    model(torch.rand(1, 5, 3, 10, 12))
    for h in hooks:
        h.remove()
    assert sizes and set(sizes) == {(10, 12)}
    stack = sum(p.numel() for p in model.parameters())
    pcd = sum(p.numel() for p in StageA(**asdict(small(mode="sra")), scale=2).parameters())
    assert stack < pcd


def test_stack_recipe_reads_every_frame_of_the_window():
    torch.manual_seed(0)
    model = StageA(**asdict(small(mode="sra", align="stack", block="residual", tail="shuffle")), scale=2)
    for p in model.parameters():  # move every weight off its initialisation
        torch.nn.init.normal_(p, std=0.1)
    x = torch.rand(1, 5, 3, 8, 8, requires_grad=True)
    model(x).sum().backward()
    assert all(x.grad[0, t].abs().sum() > 0 for t in range(5))


@pytest.mark.parametrize("n", [0, 1, 3])
def test_window_radius_is_configurable(n):
    model = StageA(**asdict(small(n=n)), scale=1)
    assert model(torch.rand(1, 2 * n + 1, 3, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match=f"{2 * n + 1} frames"):
        model(torch.rand(1, 2 * n + 2, 3, 16, 16))


def test_untrained_model_returns_its_base_exactly():
    """Residual learning (eq. 3-4) with a zero-initialised last conv: the identity / bicubic up-scale."""
    torch.manual_seed(0)
    x = torch.rand(1, 5, 3, 16, 24)
    pp = StageA(**asdict(small(mode="pp")), scale=2)
    assert torch.equal(pp(x), x[:, 2])
    sra = StageA(**asdict(small(mode="sra")), scale=2)
    expected = F.interpolate(x[:, 2], scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(sra(x), expected, atol=1e-6)


def test_learned_upsampling_starts_as_bilinear_interpolation():
    x = torch.rand(1, 3, 9, 13)
    for s in (2, 4):
        expected = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        assert torch.allclose(LearnedUpsample(s)(x), expected, atol=1e-6)


def test_every_parameter_learns():
    """By the third step every parameter has a non-zero gradient (the zero-initialised last conv and
    offset convs pass gradients upstream only once they have moved)."""
    torch.manual_seed(0)
    model = StageA(**asdict(small(mode="sra", base="learned")), scale=2)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = torch.rand(2, 5, 3, 16, 16), torch.rand(2, 3, 32, 32)
    for _ in range(3):
        opt.zero_grad()
        F.l1_loss(model(x), y).backward()
        opt.step()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_offset_learning_rate_multiplier():
    model = StageA(**asdict(small()), scale=1)
    groups = model.param_groups(2e-4, 0.25)
    assert [g["lr"] for g in groups] == [2e-4, 5e-5]
    offset_ids = {id(p) for m in model.align.offset_modules() for p in m.parameters()}
    assert {id(p) for p in groups[1]["params"]} == offset_ids
    assert len(model.align.offset_modules()) == len(SMALL["align_channels"]) + 1  # one per level + cascade
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_offsets_start_at_zero():
    model = StageA(**asdict(small()), scale=1)
    model(torch.rand(1, 5, 3, 16, 16))
    assert model.align.offset_means() == [0.0] * 4


def test_channel_then_spatial_attention_gate_what_they_should():
    torch.manual_seed(0)
    x = torch.rand(2, 16, 8, 8) + 0.1
    ratio = ChannelAttention(16)(x) / x  # one gate per (sample, channel)
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)
    assert ((ratio > 0) & (ratio < 1)).all()
    ratio = SpatialAttention()(x) / x  # one gate per (sample, pixel)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-6)
    ecbam = ECBAM(16)
    assert isinstance(ecbam[0], ChannelAttention) and isinstance(ecbam[1], SpatialAttention)


def test_attention_switch_changes_the_block():
    with_att, without = RRDB(16, 8, attention=True), RRDB(16, 8, attention=False)
    assert sum(p.numel() for p in with_att.parameters()) > sum(p.numel() for p in without.parameters())
    assert isinstance(without.attention, torch.nn.Identity)
    res_att, res = ResidualBlock(16, attention=True), ResidualBlock(16)
    assert isinstance(res.attention, torch.nn.Identity) and isinstance(res_att.attention, ECBAM)
    x = torch.rand(1, 16, 8, 8)
    res_att.load_state_dict(res.state_dict(), strict=False)  # same convs: only the gate differs
    assert not torch.allclose(res_att(x), res(x))
    stack = StageA(**asdict(small(align="stack", block="residual", tail="shuffle", attention=False)), scale=2)
    assert not any(isinstance(m, ECBAM) for m in stack.modules())


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = StageA(**asdict(small(mode="sra", n=1)), scale=2)
    with torch.no_grad():
        model.conv_last.weight.normal_()  # make the output depend on every layer
    path = tmp_path / "m.pt"
    save_model(path, model, meta={"note": "test"})
    loaded = load_model(path)
    x = torch.rand(1, 3, 3, 12, 12)
    # on the CPU the loaded weights are channels-last (faster convolutions): the same model up to float rounding
    assert loaded.conv_hr.weight.is_contiguous(memory_format=torch.channels_last)
    assert not loaded.conv_hr.weight.is_contiguous()
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=1e-5)
    assert (loaded.n, loaded.scale, loaded.meta["note"], loaded.training) == (1, 2, "test", False)
    save_model(tmp_path / "again.pt", loaded)  # a channels-last model saves the same weights
    again = torch.load(tmp_path / "again.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(again[k], v) for k, v in model.state_dict().items())


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(VQEError, match="missing.pt: model file not found"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VQEError, match="bad.pt: not a vqe model file"):
        load_model(bad)
    with pytest.raises(VQEError, match="unknown model architecture"):
        build_model("nope", {})


@pytest.mark.parametrize("profile", ["smoke", "tiny", "paper"])
def test_every_profile_builds_a_working_stage_a(profile):
    from pathlib import Path

    from vqe.config import compose, params_from_dict

    p = params_from_dict(compose(profile, Path(__file__).resolve().parents[1] / "conf"))
    model = StageA(**asdict(p.stage_a.model), scale=p.synth.scale)
    with torch.inference_mode():
        out = model(torch.rand(1, 2 * p.stage_a.model.n + 1, 3, 20, 24))
    assert out.shape == (1, 3, 20 * model.scale, 24 * model.scale)
    if profile == "paper":  # 30 RRDB x 64 channels with ECBAM: ESRGAN-sized (~16.7 M) plus PCD
        assert len(model.trunk) == 30 and 15e6 < sum(q.numel() for q in model.parameters()) < 30e6


def test_channel_attention_pools_the_spatial_mean_and_max():
    torch.manual_seed(0)
    att = ChannelAttention(16).eval()
    x = torch.randn(2, 16, 9, 7).contiguous(memory_format=torch.channels_last)
    gate = att.mlp(x.mean((2, 3), keepdim=True)) + att.mlp(x.amax((2, 3), keepdim=True))  # CBAM's eq. 2
    assert torch.allclose(att(x), x * torch.sigmoid(gate), atol=1e-6)
