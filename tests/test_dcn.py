"""The pure-PyTorch deformable conv must equal torchvision's, values and gradients; DCNv2 module init."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d as tv_deform_conv2d

from vqe.models.parts import dcn
from vqe.models.parts.dcn import (
    ModulatedDeformConv2d,
    deform_conv2d,
    deform_conv2d_torch,
)

F64 = torch.float64


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _inputs(b=2, c_in=8, c_out=6, h=7, w=9, g=2, k=(3, 3), wgroups=1, stride=1, padding=1, dilation=1,
            scale=4.0, dtype=F64, seed=0):
    """Random operands; offsets of several pixels so many samples fall partly or fully outside."""
    gen = torch.Generator().manual_seed(seed)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pair(k), _pair(stride), _pair(padding), _pair(dilation)
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    x = torch.randn(b, c_in, h, w, generator=gen, dtype=dtype)
    offset = torch.randn(b, 2 * g * kh * kw, ho, wo, generator=gen, dtype=dtype) * scale
    mask = torch.rand(b, g * kh * kw, ho, wo, generator=gen, dtype=dtype)
    weight = torch.randn(c_out, c_in // wgroups, kh, kw, generator=gen, dtype=dtype)
    bias = torch.randn(c_out, generator=gen, dtype=dtype)
    return x, offset, mask, weight, bias


def _tv(x, offset, weight, bias, mask, stride=1, padding=1, dilation=1):
    return tv_deform_conv2d(x, offset, weight, bias, stride=_pair(stride), padding=_pair(padding),
                            dilation=_pair(dilation), mask=mask)


def test_inputs_reach_outside_the_image():
    x, offset, *_ = _inputs()
    assert offset.abs().max() > 10  # several samples land wholly outside the 7x9 image


@pytest.mark.parametrize("g", [1, 2, 4])
@pytest.mark.parametrize("with_mask", [True, False])
def test_forward_equals_torchvision(g, with_mask):
    x, offset, mask, weight, bias = _inputs(g=g)
    mask = mask if with_mask else None
    ours = deform_conv2d_torch(x, offset, weight, bias, mask, stride=1, padding=1)
    ref = _tv(x, offset, weight, bias, mask)
    assert ours.shape == ref.shape == (2, 6, 7, 9)
    assert ref.abs().max() > 1
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kw", [
    dict(stride=2, padding=1, dilation=2),
    dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2), k=(3, 2)),
    dict(wgroups=2, g=4),                                 # weight groups (C_in / weight.shape[1])
    dict(h=1, w=5, g=1),                                  # a size-1 image dimension
    dict(k=1, padding=0, g=8),
])
def test_forward_and_grads_equal_torchvision_other_geometries(kw):
    x, offset, mask, weight, bias = _inputs(**kw)
    conv = {n: kw.get(n, d) for n, d in (("stride", 1), ("padding", 1), ("dilation", 1))}
    leaves = [t.requires_grad_() for t in (x, offset, mask, weight, bias)]
    ours = deform_conv2d_torch(x, offset, weight, bias, mask, **conv)
    ref = _tv(x, offset, weight, bias, mask, **conv)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    go = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ours, leaves, go), torch.autograd.grad(ref, leaves, go)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("g", [2, 4])
def test_gradients_equal_torchvision(g):
    x, offset, mask, weight, bias = _inputs(g=g, seed=1)
    leaves = [t.requires_grad_() for t in (x, offset, mask, weight, bias)]
    ours = deform_conv2d_torch(x, offset, weight, bias, mask, padding=1)
    ref = _tv(x, offset, weight, bias, mask)
    go = torch.randn_like(ref)
    g_ours = torch.autograd.grad(ours, leaves, go)
    g_ref = torch.autograd.grad(ref, leaves, go)
    for name, a, b in zip(("x", "offset", "mask", "weight", "bias"), g_ours, g_ref):
        assert b.abs().max() > 0, name
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=lambda m, n=name: f"grad {n}: {m}")


def test_float32_close_to_torchvision():
    x, offset, mask, weight, bias = _inputs(dtype=torch.float32)
    ours = deform_conv2d_torch(x, offset, weight, bias, mask, padding=1)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, _tv(x, offset, weight, bias, mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wgroups", [1, 2])
def test_zero_offsets_unit_mask_is_plain_conv(wgroups):
    x, offset, mask, weight, bias = _inputs(g=4, wgroups=wgroups)
    out = deform_conv2d_torch(x, torch.zeros_like(offset), weight, bias, torch.ones_like(mask), padding=1)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=1, groups=wgroups), rtol=0, atol=1e-12)


def test_rejects_inconsistent_shapes():
    x, offset, mask, weight, bias = _inputs(g=2)
    with pytest.raises(ValueError, match="offset"):
        deform_conv2d_torch(x, offset[:, :-1], weight, bias, mask, padding=1)
    with pytest.raises(ValueError, match="mask"):
        deform_conv2d_torch(x, offset, weight, bias, mask[:, :-1], padding=1)
    with pytest.raises(ValueError, match="offset groups"):
        deform_conv2d_torch(x, torch.zeros(2, 2 * 3 * 9, 7, 9, dtype=F64), weight, bias, padding=1)
    with pytest.raises(ValueError, match="weight"):
        deform_conv2d_torch(x, offset, weight[:, :3], bias, mask, padding=1)


def test_dispatch(monkeypatch):
    x, offset, mask, weight, bias = _inputs()
    with pytest.raises(ValueError, match="'cuda'"):
        deform_conv2d(x, offset, weight, bias, mask, padding=1, impl="cuda")
    with pytest.raises(ValueError, match="'cuda'"):
        ModulatedDeformConv2d(8, 8, offset_groups=2, impl="cuda")
    calls = []
    real = dcn.deform_conv2d_torch
    monkeypatch.setattr(dcn, "deform_conv2d_torch", lambda *a: calls.append(1) or real(*a))
    auto = deform_conv2d(x, offset, weight, bias, mask, padding=1)  # CPU tensors -> pure PyTorch
    assert calls == [1]
    forced = deform_conv2d(x, offset, weight, bias, mask, padding=1, impl="torchvision")
    assert calls == [1]
    torch.testing.assert_close(auto, forced, rtol=0, atol=1e-10)


def test_module_at_init_is_half_a_plain_conv():
    torch.manual_seed(0)
    m = ModulatedDeformConv2d(16, 12, offset_groups=8, cond_channels=5)
    x, cond = torch.randn(2, 16, 10, 11), torch.randn(2, 5, 10, 11)
    assert not m.conv_offset.weight.any() and not m.conv_offset.bias.any()
    assert m.conv_offset.out_channels == 3 * 8 * 9 and m.conv_offset.in_channels == 5
    out = m(x, cond)
    assert out.shape == (2, 12, 10, 11)
    assert m.last_offset_mean == 0.0 and isinstance(m.last_offset_mean, float)
    expected = F.conv2d(x, m.weight, padding=1) * 0.5 + m.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    bound = 1 / (16 * 9) ** 0.5  # nn.Conv2d's default init range
    assert m.weight.abs().max() <= bound and m.bias.abs().max() <= bound and m.weight.std() > bound / 4


def test_module_warns_on_large_offsets(caplog):
    m = ModulatedDeformConv2d(8, 8, offset_groups=2, offset_warn=50.0)
    x = torch.randn(1, 8, 6, 6)
    with caplog.at_level(logging.WARNING, logger="vqe.models.parts.dcn"):
        m(x, x)
        assert not caplog.records
        with torch.no_grad():
            m.conv_offset.bias[: 2 * 2 * 9] = -80.0  # all offsets -80 px
        m(x, x)
    assert m.last_offset_mean == pytest.approx(80.0)
    assert len(caplog.records) == 1 and "80.0" in caplog.records[0].getMessage()


def test_module_impls_agree_on_cpu():
    torch.manual_seed(0)
    mods = {impl: ModulatedDeformConv2d(8, 4, offset_groups=4, impl=impl) for impl in ("torch", "torchvision")}
    with torch.no_grad():  # non-trivial offsets and mask
        for p in mods["torch"].conv_offset.parameters():
            p.normal_(0, 0.5)
    mods["torchvision"].load_state_dict(mods["torch"].state_dict())
    x, cond = torch.randn(2, 8, 9, 8, dtype=F64), torch.randn(2, 8, 9, 8, dtype=F64)
    outs = {k: m.double()(x, cond) for k, m in mods.items()}
    assert mods["torch"].last_offset_mean > 0.5
    torch.testing.assert_close(outs["torch"], outs["torchvision"], rtol=0, atol=1e-10)
    for m, out in zip(mods.values(), outs.values()):
        out.square().sum().backward()
    for (n, a), b in zip(mods["torch"].named_parameters(), mods["torchvision"].parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-9, msg=lambda s, n=n: f"{n}: {s}")
