"""The Stage A pixel loss (eq. 5): values against hand computation and pytorch-msssim."""

from __future__ import annotations

import logging

import pytest
import torch
from pytorch_msssim import ms_ssim, ssim

from vqe.losses import PixelLoss, ssim_kind


def test_l1_part_is_the_mean_absolute_error():
    out = torch.zeros(1, 3, 4, 4)
    target = torch.full((1, 3, 4, 4), 0.25)
    target[..., 0, 0] = 1.0  # 3 pixels off by 1, 45 by 0.25
    assert PixelLoss(ssim_weight=0)(out, target).item() == pytest.approx((3 * 1 + 45 * 0.25) / 48)


def test_identical_images_cost_nothing():
    x = torch.rand(2, 3, 40, 40)
    assert PixelLoss(1.0)(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_small_patches_fall_back_to_ssim_and_say_so(caplog):
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    loss = PixelLoss(0.5)
    with caplog.at_level(logging.INFO, logger="vqe.losses"):
        value = loss(a, b)
    expected = (a - b).abs().mean() + 0.5 * (1 - ssim(a, b, data_range=1.0))
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.kind == "ssim" and "SSIM for 64x64" in caplog.text


def test_large_patches_use_ms_ssim():
    torch.manual_seed(0)
    a = torch.rand(1, 3, 176, 176)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    loss = PixelLoss(2.0)
    expected = (a - b).abs().mean() + 2.0 * (1 - ms_ssim(a, b, data_range=1.0))
    assert loss(a, b).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.kind == "ms-ssim"


def test_ssim_kind_threshold():
    assert ssim_kind(160, 400) == "ssim" and ssim_kind(161, 161) == "ms-ssim"


def test_loss_falls_as_the_output_approaches_the_target():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 48, 48)
    noise = torch.randn_like(target)
    values = [PixelLoss(1.0)(target + s * noise, target).item() for s in (0.3, 0.1, 0.01)]
    assert values[0] > values[1] > values[2] > 0
