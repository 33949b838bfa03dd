"""EDVR baseline: shapes, bicubic base at initialisation, TSA's temporal attention, save/load, optimiser groups."""

from __future__ import annotations

import pytest
import torch

from vqe.models.build import build_model, load_model, save_model
from vqe.models.edvr import EDVR, TSAFusion
from vqe.util.upscale import bicubic_up

SMALL = dict(channels=8, front_blocks=1, back_blocks=1, groups=4)


def small(scale: int = 2, frames: int = 3) -> EDVR:
    torch.manual_seed(0)
    return EDVR(scale, frames=frames, **SMALL)


@pytest.mark.parametrize("scale,frames,h,w", [
    (2, 3, 12, 16),   # multiples of the pyramid's 4
    (2, 5, 13, 18),   # not: padded inside, cropped back
    (1, 3, 10, 15),
    (1, 5, 12, 16),
])
def test_shapes_and_bicubic_base_at_initialisation(scale, frames, h, w):
    model = small(scale, frames)
    x = torch.rand(2, frames, 3, h, w)
    out = model(x)
    assert (model.n, model.scale) == (frames // 2, scale)
    assert out.shape == (2, 3, h * scale, w * scale)
    assert torch.equal(out, bicubic_up(x[:, frames // 2], scale))  # zero last conv: exactly the base
    assert model.offset_mean() >= 0.0


def test_trained_model_reads_neighbours_and_rejects_wrong_windows():
    model = small(2, 3)
    torch.nn.init.normal_(model.conv_last.weight, std=0.1)
    x = torch.rand(1, 3, 3, 12, 12, requires_grad=True)
    model(x).sum().backward()
    assert all(x.grad[:, i].abs().sum() > 0 for i in range(3))
    with pytest.raises(ValueError, match="windows of 3 frames"):
        model(torch.rand(1, 5, 3, 12, 12))
    with pytest.raises(ValueError, match="odd number of frames"):
        EDVR(2, frames=4, **SMALL)


def _identity_(conv: torch.nn.Conv2d, gain: float) -> None:
    """A 3x3 conv that multiplies every channel by `gain`."""
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    with torch.no_grad():
        conv.weight[:, :, 1, 1] = gain * torch.eye(conv.out_channels)


def test_temporal_attention_is_sigmoid_of_embedding_dot_products():
    torch.manual_seed(0)
    tsa = TSAFusion(channels=2, frames=3, centre=1)
    _identity_(tsa.temporal_attn1, 2.0)  # phi(ref) = 2 F_ref
    _identity_(tsa.temporal_attn2, 0.5)  # theta(F_i) = F_i / 2
    aligned = torch.randn(1, 3, 2, 4, 4)
    weights = tsa.temporal_weights(aligned)
    expected = torch.sigmoid((aligned * aligned[:, 1:2]).sum(2))  # 2 * 0.5 * <F_i, F_ref>
    torch.testing.assert_close(weights, expected)
    ref = aligned[0, 1, :, 0, 0]
    assert weights[0, 1, 0, 0].item() == pytest.approx(torch.sigmoid(ref[0] ** 2 + ref[1] ** 2).item(), abs=1e-6)


def test_identical_aligned_frames_get_equal_weights():
    torch.manual_seed(0)
    tsa = TSAFusion(channels=4, frames=5, centre=2)
    weights = tsa.temporal_weights(torch.randn(2, 1, 4, 8, 8).expand(2, 5, 4, 8, 8))
    assert weights.shape == (2, 5, 8, 8)
    assert torch.allclose(weights, weights[:, :1].expand_as(weights))
    assert tsa(torch.randn(2, 5, 4, 8, 12)).shape == (2, 4, 8, 12)


def test_save_load_round_trip(tmp_path):
    model = small(2, 3)
    torch.nn.init.normal_(model.conv_last.weight, std=0.1)
    path = tmp_path / "edvr.pt"
    save_model(path, model)
    loaded = load_model(path)
    assert (type(loaded), loaded.config, loaded.n, loaded.scale, loaded.training) == (EDVR, model.config, 1, 2, False)
    assert "impl" not in model.config
    assert isinstance(build_model("edvr", model.config, scale=2), EDVR)
    x = torch.rand(1, 3, 3, 12, 14)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)


def test_defaults_are_edvr_m():
    assert EDVR().config == dict(channels=64, frames=5, front_blocks=5, back_blocks=10, groups=8)


def test_param_groups_put_offset_convs_at_their_own_rate():
    model = small()
    groups = model.param_groups(1e-3, 0.25)
    offset = {id(p) for m in model.align.offset_modules() for p in m.parameters()}
    assert [g["lr"] for g in groups] == [1e-3, 2.5e-4]
    assert {id(p) for p in groups[1]["params"]} == offset
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
