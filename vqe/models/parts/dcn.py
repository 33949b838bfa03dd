"""Modulated deformable convolution (DCNv2), the alignment operator of EDVR's PCD module.

`torchvision.ops.deform_conv2d` is the reference implementation, but its CPU kernel is roughly
ten times slower than expressing the same operation with `grid_sample` plus one matmul, and the
CPU is where the tests and small runs happen. `deform_conv2d_torch` is that pure-PyTorch
equivalent (same arguments, layouts and numbers, checked against torchvision in the tests);
`deform_conv2d` picks torchvision's fused kernel on CUDA and the pure-PyTorch path on CPU.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import deform_conv2d as tv_deform_conv2d

logger = logging.getLogger(__name__)

IMPLS = ("auto", "torch", "torchvision")

_Pair = int | tuple[int, int]


def _pair(v: _Pair, name: str) -> tuple[int, int]:
    p = (v, v) if isinstance(v, int) else tuple(v)
    if len(p) != 2 or not all(isinstance(i, int) for i in p):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return p  # type: ignore[return-value]


def deform_conv2d_torch(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    mask: Tensor | None = None,
    stride: _Pair = 1,
    padding: _Pair = 0,
    dilation: _Pair = 1,
) -> Tensor:
    """Pure-PyTorch `torchvision.ops.deform_conv2d`: same arguments, layouts and results.

    Layouts (as torchvision): x (B, C_in, H, W); weight (C_out, C_in / groups, kh, kw), the weight
    groups inferred from C_in / weight.shape[1]; offset (B, 2*G*kh*kw, Ho, Wo) ordered
    (group, kernel position, (dy, dx)); mask (B, G*kh*kw, Ho, Wo) ordered (group, kernel position).
    Sample (y, x) of kernel position (i, j) at output (oy, ox) is
    (oy*sh - ph + i*dh + dy, ox*sw - pw + j*dw + dx), bilinearly interpolated with zeros outside
    the image -- exactly `grid_sample(padding_mode="zeros")`, so all kernel positions of all
    offset groups are sampled in one `grid_sample` call and contracted with the weight in one
    matmul. Autograd comes from those two ops.
    """
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    if x.dim() != 4 or offset.dim() != 4 or weight.dim() != 4:
        raise ValueError("x, offset and weight must be 4-D (B, C, H, W) tensors")
    b, c_in, h, w = x.shape
    c_out, c_per_wgroup, kh, kw = weight.shape
    k = kh * kw
    if c_per_wgroup == 0 or c_in % c_per_wgroup:
        raise ValueError(f"weight.shape[1]={c_per_wgroup} does not divide the {c_in} input channels")
    groups = c_in // c_per_wgroup
    if c_out % groups:
        raise ValueError(f"{c_out} output channels are not divisible by the {groups} weight groups")
    if offset.shape[1] == 0 or offset.shape[1] % (2 * k):
        raise ValueError(f"offset has {offset.shape[1]} channels; expected a multiple of 2*kh*kw={2 * k}")
    g = offset.shape[1] // (2 * k)
    if c_in % g:
        raise ValueError(f"{c_in} input channels are not divisible by the {g} offset groups")
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(f"input {h}x{w} is too small for this kernel/padding/dilation")
    if offset.shape[0] != b or offset.shape[2:] != (ho, wo):
        raise ValueError(f"offset shape {tuple(offset.shape)} does not match batch {b} and output {ho}x{wo}")
    if mask is not None and mask.shape != (b, g * k, ho, wo):
        raise ValueError(f"mask shape {tuple(mask.shape)}; expected {(b, g * k, ho, wo)}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias shape {tuple(bias.shape)}; expected ({c_out},)")

    # Sampling positions in input pixels, (B, G, K, Ho, Wo) each.
    off = offset.reshape(b, g, k, 2, ho, wo)
    kw_idx = torch.arange(kw, device=x.device, dtype=x.dtype)
    kh_idx = torch.arange(kh, device=x.device, dtype=x.dtype)
    base_y = (kh_idx * dh).repeat_interleave(kw).view(k, 1, 1) + (
        torch.arange(ho, device=x.device, dtype=x.dtype) * sh - ph).view(1, ho, 1)
    base_x = (kw_idx * dw).repeat(kh).view(k, 1, 1) + (
        torch.arange(wo, device=x.device, dtype=x.dtype) * sw - pw).view(1, 1, wo)
    py = base_y + off[:, :, :, 0]
    px = base_x + off[:, :, :, 1]
    # Pixel -> normalised coordinates for align_corners=False: g = (2p + 1) / size - 1. (Unlike
    # align_corners=True, this stays well defined for a size-1 dimension; zero padding is the same.)
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)
    grid = grid.view(b * g, k, ho * wo, 2)
    cols = F.grid_sample(
        x.reshape(b * g, c_in // g, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (B*G, C_in/G, K, Ho*Wo)
    if mask is not None:
        cols = cols * mask.reshape(b * g, 1, k, ho * wo)
    # Channel-major (c, kernel position) rows, matching weight.view(C_out, C_in/groups * K).
    cols = cols.reshape(b, groups, c_per_wgroup * k, ho * wo)
    wmat = weight.reshape(groups, c_out // groups, c_per_wgroup * k)
    out = torch.matmul(wmat, cols).reshape(b, c_out, ho, wo)
    if bias is not None:
        out = out + bias.view(1, c_out, 1, 1)
    return out


def deform_conv2d(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    mask: Tensor | None = None,
    stride: _Pair = 1,
    padding: _Pair = 0,
    dilation: _Pair = 1,
    impl: str = "auto",
) -> Tensor:
    """Deformable conv with the fastest backend per device.

    impl="auto": torchvision's fused kernel for CUDA tensors (less memory than the column tensor
    built here), `deform_conv2d_torch` on CPU (torchvision's CPU kernel is ~10x slower).
    impl="torchvision" / "torch" force one backend.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown deformable-conv impl {impl!r}; use one of {IMPLS}")
    if impl == "torch" or (impl == "auto" and not x.is_cuda):
        return deform_conv2d_torch(x, offset, weight, bias, mask, stride, padding, dilation)

    return tv_deform_conv2d(
        x, offset, weight, bias, stride=_pair(stride, "stride"), padding=_pair(padding, "padding"),
        dilation=_pair(dilation, "dilation"), mask=mask,
    )


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 whose offsets and modulation mask are predicted from a conditioning feature.

    In EDVR's PCD alignment, x is the neighbouring frame's feature and `cond` the offset feature
    computed from (neighbour, reference): the deformable conv then warps x towards the reference.
    `conv_offset` starts at zero so training starts from a plain conv (zero offsets, mask 0.5)
    instead of random warps. Large offsets are EDVR's known failure mode (training diverges once
    they explode), hence `last_offset_mean` for monitoring and a warning above `offset_warn`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        offset_groups: int = 8,
        cond_channels: int | None = None,
        offset_warn: float = 50.0,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"unknown deformable-conv impl {impl!r}; use one of {IMPLS}")
        if in_channels % offset_groups:
            raise ValueError(f"in_channels={in_channels} is not divisible by offset_groups={offset_groups}")
        if 2 * padding != kernel_size - 1:
            # The offsets are predicted at cond's resolution, so the conv must preserve size.
            raise ValueError(f"need a size-preserving conv (odd kernel_size, padding=(k-1)/2); "
                             f"got kernel_size={kernel_size}, padding={padding}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = padding
        self.offset_groups = offset_groups
        self.offset_warn = offset_warn
        self.impl = impl
        self.last_offset_mean: float = 0.0

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.conv_offset = nn.Conv2d(
            cond_channels or in_channels, 3 * offset_groups * kernel_size * kernel_size, 3, padding=1
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's default init for the main conv; zeros for the offset/mask predictor."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.weight[0].numel())
        nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        out = self.conv_offset(cond)
        n_off = 2 * self.offset_groups * self.kernel_size * self.kernel_size
        offset, mask = out[:, :n_off], torch.sigmoid(out[:, n_off:])
        # .item() syncs a CUDA stream once per call; acceptable for the monitoring it buys. A graph being
        # compiled or exported (`vqe export`) cannot read a value out of its tensors: no monitoring there.
        if not (torch.compiler.is_compiling() or torch.compiler.is_exporting()):
            self.last_offset_mean = float(offset.detach().abs().mean())
            if self.last_offset_mean > self.offset_warn:
                logger.warning("deformable conv: mean |offset| %.1f px exceeds %.1f; alignment may be diverging",
                               self.last_offset_mean, self.offset_warn)
        return deform_conv2d(x, offset, self.weight, self.bias, mask, stride=1, padding=self.padding,
                             impl=self.impl)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, offset_groups={self.offset_groups}, impl={self.impl!r}")
