"""SUPERVEGAN (seed 001): shapes, the DUF of eq. 4, the blend of eq. 5, the schedule, the losses of eq. 8."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vqe.models.build import build_model, load_model, save_model
from vqe.models.supervegan import (
    TAPS,
    SuperVEGAN,
    SuperVEGANDiscriminator,
    TemporalConv,
    apply_duf,
    discriminator_loss,
    generator_loss,
    schedule,
)
from vqe.util.upscale import bicubic_up

TINY = {"channels": 8, "blocks_a": 1, "branch_blocks": 1, "blocks_b": 1}


def tiny(variant: str, n: int = 2, scale: int = 2, trained: bool = True) -> SuperVEGAN:
    """A tiny model; `trained` randomises the zero-initialised last convs so every path shows in the output."""
    torch.manual_seed(0)
    model = SuperVEGAN(scale, variant=variant, n=n, **TINY).eval()
    if trained:
        for conv in (model.stage_a.filter_branch[-1], model.stage_a.residual_branch[-2], model.stage_b.last):
            torch.nn.init.normal_(conv.weight, std=0.05)
    return model


def frames(n: int, h: int, w: int, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 2 * n + 1, 3, h, w, generator=torch.Generator().manual_seed(1))


def nearest(x: torch.Tensor, s: int) -> torch.Tensor:
    return x.repeat_interleave(s, -2).repeat_interleave(s, -1)


@pytest.mark.parametrize("variant,n,scale,h,w", [("g2", 2, 2, 12, 16), ("g2", 1, 2, 13, 7), ("g4", 2, 2, 12, 16),
                                                 ("g4", 1, 2, 11, 9), ("g4", 2, 4, 5, 6), ("g2", 0, 2, 6, 5)])
def test_forward_shapes(variant, n, scale, h, w):
    model = tiny(variant, n, scale)
    x = frames(n, h, w)
    with torch.no_grad():
        y_a, y_b = model.forward_stages(x)
        y = model(x)
    sa = model.stage_a_scale
    assert sa == (1 if variant == "g2" else 2)
    assert y_a.shape == (2, 3, h * sa, w * sa)
    assert y_b.shape == y.shape == (2, 3, h * scale, w * scale)
    torch.testing.assert_close(y, y_b)


def test_wrong_window_is_an_error():
    with pytest.raises(ValueError, match="5, 3, h, w"):
        tiny("g2")(frames(1, 8, 8))


@pytest.mark.parametrize("variant", ["g2", "g4"])
def test_blend_ends(variant):
    model = tiny(variant)
    with torch.no_grad():
        y_a, y_b = model.forward_stages(frames(2, 9, 10))
    up = nearest(y_a, 2) if variant == "g2" else y_a
    assert torch.equal(model.blend(y_a, y_b, 0.0), up)
    assert torch.equal(model.blend(y_a, y_b, 1.0), y_b)
    torch.testing.assert_close(model.blend(y_a, y_b, 0.25), 0.75 * up + 0.25 * y_b)


@pytest.mark.parametrize("variant,reference", [("g2", "bicubic"), ("g4", "bilinear")])
def test_untrained_model_is_an_interpolation(variant, reference):
    """Zero last convs and identity (g2) / bilinear (g4) initial filters: ~bicubic(X_t) or ~bilinear(X_t)."""
    model = tiny(variant, trained=False)
    x = frames(2, 12, 10)
    centre = x[:, 2]
    want = bicubic_up(centre, 2) if reference == "bicubic" else F.interpolate(centre, scale_factor=2,
                                                                              mode="bilinear")
    with torch.no_grad():
        y = model(x)
    assert (y - want).abs().max() < 0.02


def test_duf_centre_tap_is_identity_or_nearest():
    x = torch.rand(2, 3, 5, 7)
    one_hot = torch.zeros(2, TAPS, 1, 5, 7)
    one_hot[:, TAPS // 2] = 1
    assert torch.equal(apply_duf(x, one_hot), x)
    assert torch.equal(apply_duf(x, one_hot.expand(2, TAPS, 4, 5, 7)), nearest(x, 2))


def test_duf_tap_offsets():
    """Tap (j=0, i=+1) reads X_t(y, x+1): a shift by one pixel, the last column replicated; (j=+1, i=0) a row."""
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    filt = torch.zeros(2, TAPS, 1, 4, 6)
    filt[:, 5 * 2 + 3] = 1
    y = apply_duf(x, filt)
    assert torch.equal(y[..., :-1], x[..., 1:]) and torch.equal(y[..., -1], x[..., -1])
    filt = torch.zeros(2, TAPS, 4, 4, 6)
    filt[:, 5 * 3 + 2, 3] = 1  # sub-pixel (v=1, u=1) reads the pixel below; the others are zero
    y = apply_duf(x, filt)
    assert torch.equal(y[..., 1::2, 1::2][..., :-1, :], x[..., 1:, :])
    assert not y[..., 0::2, :].any() and not y[..., :, 0::2].any()


def test_temporal_conv_is_a_conv3d():
    conv = TemporalConv(4, 5)
    x = torch.rand(2, 5, 4, 6, 7)
    w3 = conv.conv.weight.view(5, 3, 4, 3, 3).permute(0, 2, 1, 3, 4)  # (out, in, t, kh, kw)
    want = F.conv3d(x.transpose(1, 2), w3, conv.conv.bias, padding=(0, 1, 1)).transpose(1, 2)
    torch.testing.assert_close(conv(x), want)


@pytest.mark.parametrize("variant", ["g2", "g4"])
def test_stage_parameters_partition(variant):
    model = tiny(variant)
    a = {id(p) for p in model.stage_a_parameters()}
    b = {id(p) for p in model.stage_b_parameters()}
    assert a and b and not a & b
    assert a | b == {id(p) for p in model.parameters()}


def test_stage_a_output_needs_only_stage_a():
    model = tiny("g4")
    x = frames(2, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_a(x), model.forward_stages(x)[0])


def test_schedule_boundaries():
    assert schedule(1, 400) == (1, 0.0)
    assert schedule(100, 400) == (1, 0.0)
    assert schedule(101, 400) == (2, 0.01)
    assert schedule(150, 400) == (2, 0.5)
    assert schedule(200, 400) == (2, 1.0)
    assert schedule(201, 400) == (3, 1.0)
    assert schedule(400, 400) == (3, 1.0)
    # 10 iterations: ends at 2.5 -> 3 and 5; phase 2 is iterations 4, 5
    assert [schedule(i, 10) for i in range(1, 7)] == [(1, 0.0)] * 3 + [(2, 0.5), (2, 1.0), (3, 1.0)]
    assert schedule(1, 4, (0, 1, 1)) == (2, 0.5)
    assert schedule(3, 4, (1, 0, 1)) == (3, 1.0)
    for bad in ((0, 10), (11, 10)):
        with pytest.raises(ValueError):
            schedule(*bad)


def test_losses_by_hand():
    logit = torch.tensor([[0.0], [2.0]])
    sig2 = 1 / (1 + math.exp(-2.0))
    assert generator_loss(logit).item() == pytest.approx((math.log(2) - math.log(sig2)) / 2)
    real, fake = torch.tensor([[2.0]]), torch.tensor([[-1.0]])
    want = -math.log(sig2) - math.log(1 - 1 / (1 + math.exp(1.0)))
    assert discriminator_loss(real, fake).item() == pytest.approx(want)
    assert discriminator_loss(torch.zeros(3, 1), torch.zeros(3, 1)).item() == pytest.approx(2 * math.log(2))
    assert torch.isfinite(generator_loss(torch.tensor([-200.0])))  # no log(0) for a confident D


def test_discriminator_shape_and_size_check():
    disc = SuperVEGANDiscriminator(patch=24, channels=4, levels=3)
    assert disc(torch.rand(2, 3, 24, 24)).shape == (2, 1)
    assert SuperVEGANDiscriminator(patch=13, channels=4, levels=2)(torch.rand(1, 3, 13, 13)).shape == (1, 1)
    with pytest.raises(ValueError, match="24x24.*got 20x24"):
        disc(torch.rand(2, 3, 20, 24))


@pytest.mark.parametrize("variant", ["g2", "g4"])
def test_save_load_round_trip(tmp_path, variant):
    model = tiny(variant)
    assert build_model("supervegan", model.config, model.scale).config == model.config
    save_model(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")
    assert not loaded.training and loaded.config == model.config and loaded.scale == 2
    x = frames(2, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-5)
