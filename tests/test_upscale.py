"""vqe.util.upscale: the one bicubic up-scaling (separable convolutions, checked against torch's bicubic kernel and
taps worked out by hand) and the uint8 quantisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vqe.util.upscale import bicubic_frames, bicubic_taps, bicubic_up, to_uint8


def test_x2_taps_by_hand():
    # a = -0.75: W(0.25) = 0.87890625, W(0.75) = 0.26171875, W(1.25) = -0.10546875, W(1.75) = -0.03515625;
    # output 2i samples the input at i - 0.25 (taps at i-2 .. i+1), output 2i+1 at i + 0.25 (i-1 .. i+2)
    assert bicubic_taps(2).tolist() == [[-0.03515625, 0.26171875, 0.87890625, -0.10546875, 0.0],
                                        [0.0, -0.10546875, 0.87890625, 0.26171875, -0.03515625]]
    for s in (2, 3, 4):
        assert torch.allclose(bicubic_taps(s).sum(1), torch.ones(s, dtype=torch.float64))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 3, 45, 80), (2, 3, 7, 5), (1, 1, 1, 1), (1, 3, 2, 9)])
def test_equals_torch_bicubic_interpolation(scale, shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)))
    want = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    got = bicubic_up(x, scale)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < (1e-6 if scale != 3 else 5e-5)  # torch's 1/3 is inexact in float


def test_channels_last_input_and_gradients():
    x = torch.rand(1, 3, 12, 10).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = bicubic_up(x, 2)
    assert torch.allclose(y, F.interpolate(x.detach(), scale_factor=2, mode="bicubic", align_corners=False), atol=1e-6)
    y.sum().backward()  # each input pixel's weights sum to scale^2 away from the border
    assert torch.allclose(x.grad[..., 3:-3, 3:-3], torch.full_like(x.grad[..., 3:-3, 3:-3], 4.0), atol=1e-5)
    assert bicubic_up(x, 1) is x


def test_bicubic_frames_rounds_the_up_scaled_frames():
    frames = np.random.default_rng(0).integers(0, 256, (2, 6, 8, 3), dtype=np.uint8)
    out = bicubic_frames(frames, 12, 16)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    want = to_uint8(F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)).permute(0, 2, 3, 1).numpy()
    assert out.shape == (2, 12, 16, 3) and np.abs(out.astype(int) - want).max() <= 1
    assert (out != want).mean() < 1e-3
