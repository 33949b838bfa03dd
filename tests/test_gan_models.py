"""Stage B and the PatchGAN discriminators: identity at init, learning, shapes, receptive field."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F
from conftest import profile_params
from torch import nn
from torch.nn.utils import parametrize

from vqe.config import DiscModel
from vqe.models.parts.discriminator import (
    PatchDiscriminator,
    build_discriminators,
    stack_frames,
)
from vqe.models.stage_b import StageB

TINY = replace(profile_params().stage_b.model, channels=16, blocks=2)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("h,w", [(16, 24), (15, 21), (1, 1), (2, 7)])
def test_untrained_stage_b_is_exactly_the_identity(h, w):
    """Zero-initialised last conv: R_B = 0, so Y = Y^A (eq. 6) for even and odd sizes."""
    torch.manual_seed(0)
    y = torch.rand(2, 3, h, w)
    out = StageB(channels=TINY.channels, blocks=TINY.blocks)(y)
    assert out.shape == y.shape
    assert torch.equal(out, y)


def test_stage_b_output_shape_once_trained_weights_are_non_zero():
    torch.manual_seed(0)
    model = StageB(channels=TINY.channels, blocks=TINY.blocks)
    with torch.no_grad():
        model.conv_last.weight.normal_(std=0.1)
    y = torch.rand(1, 3, 13, 18)
    out = model(y)
    assert out.shape == (1, 3, 13, 18)
    assert not torch.equal(out, y)


def test_stage_b_records_its_config():
    model = StageB(channels=TINY.channels, blocks=TINY.blocks)
    assert model.config == {"channels": 16, "blocks": 2}


def test_every_stage_b_parameter_learns():
    """Step 1 only moves the zero-initialised last conv; by step 3 every parameter has moved."""
    torch.manual_seed(0)
    model = StageB(channels=TINY.channels, blocks=TINY.blocks)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)
    for _ in range(3):
        opt.zero_grad()
        F.l1_loss(model(x), y).backward()
        opt.step()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    frozen = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert frozen == []


def test_paper_sized_stage_b_parameter_count():
    """64 filters, 10 residual blocks at 128 channels: ~3.3M parameters, mostly in the blocks."""
    model = StageB(channels=64, blocks=10)
    assert 3.0e6 < n_params(model) < 3.6e6
    assert n_params(model.body) == 10 * 2 * (128 * 128 * 9 + 128)


def without_norm(d: PatchDiscriminator) -> PatchDiscriminator:
    """InstanceNorm couples every pixel, so the receptive field is measured with it removed."""
    for i, m in enumerate(d.net):
        if isinstance(m, nn.InstanceNorm2d):
            d.net[i] = nn.Identity()
    return d


def gradient_extent(d: nn.Module, size: int = 128) -> tuple[int, int]:
    """Rows and columns of the input that one interior output logit depends on."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    g = x.grad.abs()
    rows = g.sum((0, 1, 3)).nonzero().flatten()
    cols = g.sum((0, 1, 2)).nonzero().flatten()
    assert len(rows) == rows[-1] - rows[0] + 1 and len(cols) == cols[-1] - cols[0] + 1  # contiguous
    assert rows[0] > 0 and rows[-1] < size - 1  # interior: not clipped by the border
    return len(rows), len(cols)


@pytest.mark.parametrize("spectral", [False, True])
@pytest.mark.parametrize("layers, field", [(3, 70), (2, 34), (1, 16)])  # r <- (r - 1) * stride + 4: pix2pix's 70x70
def test_empirical_receptive_field(spectral, layers, field):
    torch.manual_seed(0)
    d = PatchDiscriminator(3, channels=8, layers=layers, spectral_norm=spectral)
    if not spectral:
        d = without_norm(d)
    assert gradient_extent(d) == (field, field)


@pytest.mark.parametrize("size,out", [(64, 6), (128, 14)])
def test_discriminator_output_shape(size, out):
    d = PatchDiscriminator(3, channels=8)
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1, out, out)


def test_discriminator_widths_follow_pix2pix():
    d = PatchDiscriminator(3, channels=8, layers=5)
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 64, 64, 1]  # capped at 8c
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in d.net) == 5


def test_temporal_discriminator_takes_nine_channels():
    d = PatchDiscriminator(9, channels=8)
    seq = torch.rand(2, 3, 3, 64, 64)
    assert d(stack_frames(seq)).shape == (2, 1, 6, 6)
    with pytest.raises(RuntimeError):
        d(torch.rand(2, 3, 64, 64))


def test_stack_frames_order_and_errors():
    seq = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(2, 3, 3, 4, 5)
    stacked = stack_frames(seq)
    assert stacked.shape == (2, 9, 4, 5)
    assert stacked[0, :, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # frame 0 -> channels 0..2
    with pytest.raises(ValueError, match="3 frames"):
        stack_frames(torch.rand(2, 5, 3, 4, 5))
    with pytest.raises(ValueError, match="3 frames"):
        stack_frames(torch.rand(2, 9, 4, 5))


@pytest.mark.parametrize("kinds", [["spatial"], ["spatial", "temporal"]])
def test_build_discriminators(kinds):
    ds = build_discriminators(**asdict(DiscModel(kinds=kinds, channels=8, layers=2, spectral_norm=False)))
    assert list(ds.keys()) == kinds
    assert ds["spatial"].net[0].in_channels == 3
    if "temporal" in kinds:
        assert ds["temporal"].net[0].in_channels == 9
    with pytest.raises(ValueError, match="unknown"):
        build_discriminators(**asdict(replace(profile_params().stage_b.disc, kinds=["spectral"])))


def test_spectral_norm_is_applied_to_every_conv():
    d = PatchDiscriminator(3, channels=8, spectral_norm=True)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all(parametrize.is_parametrized(c, "weight") and c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in d.modules())
    plain = PatchDiscriminator(3, channels=8)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    d.train()  # each training forward runs one power iteration on u, v
    with torch.no_grad():
        for _ in range(10):
            d(torch.rand(1, 3, 32, 32))
        sigma = torch.linalg.matrix_norm(convs[0].weight.flatten(1), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=0.05)
