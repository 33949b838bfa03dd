"""Galteri et al.: generator shapes and range, the sizes' FLOP ratios, save/load, the unpadded
discriminator's geometry, and eq. 4/7 on sub-patch averaged probabilities checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vqe.models.build import build_model, load_model, save_model
from vqe.models.galteri import (
    SIZES,
    Galteri,
    GalteriDiscriminator,
    adversarial_loss,
    disc_widths,
    discriminator_loss,
    macs_per_pixel,
    patch_probabilities,
)
from vqe.util.upscale import bicubic_up

TINY = dict(channels=8, blocks=2)


@pytest.mark.parametrize("scale,h,w", [(1, 16, 20), (1, 15, 21), (2, 16, 20), (2, 15, 21), (3, 7, 9)])
def test_output_shape_and_range_for_odd_and_even_sizes(scale, h, w):
    torch.manual_seed(0)
    model = Galteri(scale, **TINY)
    out = model(torch.rand(2, 1, 3, h, w))
    assert (model.n, model.scale, model.arch) == (0, scale, "galteri")
    assert out.shape == (2, 3, h * scale, w * scale)
    assert out.min() >= 0 and out.max() <= 1


def test_multi_frame_windows_are_refused():
    with pytest.raises(ValueError, match="single-frame"):
        Galteri(2, **TINY)(torch.rand(1, 3, 3, 8, 8))


def test_trunk_runs_at_the_decoded_size_for_scale_2():
    model = Galteri(2, **TINY)
    sizes = []
    hooks = [b.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:]))) for b in model.trunk]
    model(torch.rand(1, 1, 3, 16, 20))
    for hook in hooks:
        hook.remove()
    assert sizes == [(16, 20)] * TINY["blocks"]


def conv_macs_per_pixel(model: Galteri, h: int = 16, w: int = 20) -> float:
    """The generator's own multiply-adds per output pixel: the bicubic input (two small convolutions in
    vqe.util.upscale) is not part of the network the formula describes, so it is counted apart and left out."""
    x = torch.rand(1, 1, 3, h, w)
    with FlopCounterMode(display=False) as counter:
        model(x)
    with FlopCounterMode(display=False) as base:
        bicubic_up(x[:, 0], model.scale)
    return (counter.get_total_flops() - base.get_total_flops()) / 2 / (h * w * model.scale ** 2)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_every_size_builds_and_its_flops_match_the_formula(name):
    model = build_model("galteri", SIZES[name], scale=2)
    assert isinstance(model, Galteri) and model.config == SIZES[name]
    assert conv_macs_per_pixel(model) == macs_per_pixel(**SIZES[name])


def test_size_flop_ratios_are_those_the_docstring_claims():
    """Table 2: 4, 20 and 42 fps -> the full model ~5x and ~10.5x the cost of fast and very fast."""
    macs = {name: macs_per_pixel(**sizes) for name, sizes in SIZES.items()}
    assert macs == {"galteri": 315504, "galteri_fast": 60984, "galteri_veryfast": 28728}
    assert macs["galteri"] / macs["galteri_fast"] == pytest.approx(5.17, abs=0.01)
    assert macs["galteri"] / macs["galteri_veryfast"] == pytest.approx(10.98, abs=0.01)
    assert macs["galteri_fast"] / macs["galteri_veryfast"] == pytest.approx(2.12, abs=0.01)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Galteri(2, **TINY).eval()
    path = tmp_path / "galteri.pt"
    save_model(path, model)
    loaded = load_model(path)
    assert isinstance(loaded, Galteri) and loaded.config == TINY and loaded.scale == 2 and not loaded.training
    x = torch.rand(1, 1, 3, 15, 21)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)


@pytest.mark.parametrize("layers,h,w", [(3, 30, 41), (4, 24, 24), (5, 11, 12)])
def test_discriminator_shrinks_2_pixels_per_layer_and_doubles_width_every_two(layers, h, w):
    torch.manual_seed(0)
    disc = GalteriDiscriminator(channels=4, layers=layers)
    image, cond = torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)
    assert disc(image, cond).shape == (2, 1, h - 2 * layers, w - 2 * layers)
    convs = [m for m in disc.net if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 6
    assert [c.out_channels for c in convs] == disc_widths(4, layers) + [1]
    assert disc_widths(4, 6) == [4, 4, 8, 8, 16, 16]
    assert all(c.stride == (1, 1) and c.padding == (0, 0) for c in convs)


def test_discriminator_is_conditional():
    torch.manual_seed(0)
    disc = GalteriDiscriminator(channels=4, layers=2)
    image = torch.rand(1, 3, 8, 8)
    assert not torch.allclose(disc(image, torch.zeros_like(image)), disc(image, torch.ones_like(image)))


def test_too_small_inputs_raise_clear_errors():
    disc = GalteriDiscriminator(channels=4, layers=4, sub_patch=16)
    assert disc.min_size == 24
    with pytest.raises(ValueError, match="too small for 4 unpadded"):
        disc(torch.rand(1, 3, 8, 30), torch.rand(1, 3, 8, 30))
    logits = disc(torch.rand(1, 3, 20, 30), torch.rand(1, 3, 20, 30))  # 12 x 22 logits: no full sub-patch
    with pytest.raises(ValueError, match="no full 16x16 sub-patch"):
        disc.patch_probabilities(logits)
    assert disc.patch_probabilities(disc(torch.rand(1, 3, 24, 40), torch.rand(1, 3, 24, 40))).shape == (1, 1, 1, 2)


def test_losses_at_probability_one_half_are_log_2_per_term():
    zeros = torch.zeros(2, 1, 32, 48)
    assert patch_probabilities(zeros).shape == (2, 1, 2, 3)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert adversarial_loss(zeros).item() == pytest.approx(math.log(2))


def two_patch_logits() -> torch.Tensor:
    """(1, 1, 32, 16): top sub-patch all p = 0.9; bottom one half p = 0.9, half p = 0.25 (mean 0.575)."""
    logits = torch.full((1, 1, 32, 16), math.log(9))
    logits[..., 16:, 8:] = math.log(1 / 3)
    return logits


def test_losses_average_decisions_per_sub_patch_before_the_log():
    real, fake = two_patch_logits(), -two_patch_logits()  # fake: p = 0.1 on top, 0.425 below
    assert patch_probabilities(real).flatten().tolist() == pytest.approx([0.9, 0.575], abs=1e-5)
    d_loss = (-math.log(0.9) - math.log(0.575)) / 2 + (-math.log(1 - 0.1) - math.log(1 - 0.425)) / 2
    adv = (-math.log(0.1) - math.log(0.425)) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(d_loss, rel=1e-5)
    assert adversarial_loss(fake).item() == pytest.approx(adv, rel=1e-5)
    per_pixel = nn.functional.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)).item()
    assert per_pixel != pytest.approx(adv, rel=1e-3)  # averaging after the log would be another loss
    # sub_patch=8 splits the bottom patch into a p = 0.9 and a p = 0.25 column: four sub-patches
    assert adversarial_loss(real, sub_patch=8).item() == pytest.approx(
        (-3 * math.log(0.9) - math.log(0.25)) / 4, rel=1e-5)


def test_losses_stay_finite_for_saturated_logits():
    big = torch.full((1, 1, 16, 16), 200.0)
    assert math.isfinite(discriminator_loss(-big, big).item())
    assert adversarial_loss(-big).item() == pytest.approx(-math.log(1e-6), rel=1e-4)
    assert 0 < discriminator_loss(big, -big).item() < 1e-5  # -2 log(1 - eps), up to float32 rounding


def test_losses_give_gradients_to_both_networks():
    torch.manual_seed(0)
    gen, disc = Galteri(2, **TINY), GalteriDiscriminator(channels=4, layers=2, sub_patch=4)
    x = torch.rand(1, 1, 3, 8, 10)
    cond = nn.functional.interpolate(x[:, 0], scale_factor=2, mode="bicubic")
    adversarial_loss(disc(gen(x), cond), sub_patch=4).backward()
    assert gen.head[0].weight.grad is not None and gen.head[0].weight.grad.abs().sum() > 0
