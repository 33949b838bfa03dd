"""ESRGAN+DnCNN baseline: shapes, DnCNN's residual identity, its auxiliary loss, save/load."""

from __future__ import annotations

import pytest
import torch

from vqe.models.build import build_model, load_model, save_model
from vqe.models.esrgan_dncnn import DnCNN, ESRGANDnCNN

SMALL = dict(blocks=1, channels=8, growth=4, dncnn_depth=3, dncnn_channels=8)


def small(scale: int = 2) -> ESRGANDnCNN:
    torch.manual_seed(0)
    return ESRGANDnCNN(scale, **SMALL)


@pytest.mark.parametrize("scale,h,w", [(2, 12, 16), (2, 13, 15), (4, 12, 16), (4, 11, 17)])
def test_shapes_and_stored_denoised_frame(scale, h, w):
    model = small(scale)
    x = torch.rand(2, 1, 3, h, w)
    out = model(x)
    assert (model.n, model.scale) == (0, scale)
    assert out.shape == (2, 3, h * scale, w * scale)
    assert model.last_denoised.shape == (2, 3, h, w)
    assert torch.equal(model.last_denoised, model.denoiser(x[:, 0]))
    assert torch.equal(out, model.sr(model.last_denoised))  # denoise, then SR


def test_rejects_windows_and_scales_it_cannot_handle():
    with pytest.raises(ValueError, match="windows of 1 frame"):
        small()(torch.rand(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="powers of 2"):
        ESRGANDnCNN(3, **SMALL)


def test_dncnn_with_zero_last_conv_returns_its_input():
    dncnn = DnCNN(depth=4, channels=8)
    torch.nn.init.zeros_(dncnn.last.weight)
    torch.nn.init.zeros_(dncnn.last.bias)
    x = torch.rand(2, 3, 12, 16)
    assert torch.equal(dncnn(x), x)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in dncnn.modules()) == 2  # depth - 2


def test_aux_loss_is_the_mse_of_the_denoised_frame():
    model = small()
    with pytest.raises(RuntimeError, match="forward pass first"):
        model.aux_loss(torch.rand(1, 3, 12, 16))
    model(torch.rand(2, 1, 3, 12, 16))
    target = torch.rand(2, 3, 12, 16)
    loss = model.aux_loss(target)
    expected = ((model.last_denoised - target) ** 2).sum() / target.numel()
    torch.testing.assert_close(loss, expected)
    loss.backward()  # reaches DnCNN only
    assert model.denoiser.last.weight.grad is not None and model.sr.conv_last.weight.grad is None
    with pytest.raises(ValueError, match="not the denoised frame"):
        model.aux_loss(torch.rand(2, 3, 24, 32))


def test_save_load_round_trip(tmp_path):
    model = small(2)
    model(torch.rand(2, 1, 3, 8, 8))  # one training-mode pass moves the BN running statistics
    path = tmp_path / "esrgan_dncnn.pt"
    save_model(path, model)
    loaded = load_model(path)
    assert (type(loaded), loaded.config, loaded.n, loaded.scale, loaded.training) == (
        ESRGANDnCNN, model.config, 0, 2, False)
    assert isinstance(build_model("esrgan_dncnn", model.config, scale=4), ESRGANDnCNN)
    x = torch.rand(1, 1, 3, 12, 14)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)


def test_defaults_are_the_papers():
    model = ESRGANDnCNN()
    assert model.config == dict(blocks=23, channels=64, growth=32, dncnn_depth=17, dncnn_channels=64)
    assert len(model.sr.trunk) == 23 and len(model.sr.up_convs) == 1
