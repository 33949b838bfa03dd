"""Galteri et al. (§3): a residual generator for compression artifact removal and its conditional
sub-patch discriminator; a single-frame Table 1 baseline (window radius n = 0).

What the paper gives (§3.1): 64 3x3 kernels per layer, LeakyReLU activations, the first conv strided to
halve the feature maps, 15 residual blocks (padding 1), nearest-neighbour up-sampling followed by a conv
"to remove up-sampling artifacts", and an output conv with tanh, so the output lies in [-1, 1] like the
rescaled input. The output is the image itself, not a residual, and so it is here too.

What we chose where the paper is silent or its task differs from ours:

* Our task is x`scale` super-resolution plus artifact removal; the paper only removes artifacts at the
  decoded size. So the generator gets the bicubic up-sampled frame (`bicubic_up`), rescaled to [-1, 1],
  and restores at the output size. Its trunk then runs at half the output size (the decoded size for
  scale 2), so the cost per output pixel is the paper's cost per pixel.
* Residual blocks are conv-LeakyReLU-conv plus the identity, with no normalisation (the paper names
  none); the LeakyReLU slope is 0.2. Odd output sizes are padded by one replicated row/column for the
  stride and cropped back.
* Sizes (`SIZES`). Table 2 gives "Our Fast" (20 fps at 720p) and "Our Very Fast" (42 fps) against 4 fps
  for the full model, without their sizes. Taking FLOPs as the proxy for time, the full model should
  cost ~5x and ~10.5x as much. `macs_per_pixel` counts the conv multiply-accumulates per output pixel:
  33.75 c + (4.5 blocks + 9) c^2 (the trunk runs at a quarter of the output pixels; the conv after
  up-sampling and the output conv at all of them), giving

      galteri           c=64, 15 blocks   315,504 MACs/pixel   1x
      galteri_fast      c=32, 11 blocks    60,984 MACs/pixel   5.17x cheaper  (fps ratio 5)
      galteri_veryfast  c=32,  4 blocks    28,728 MACs/pixel   10.98x cheaper (fps ratio 10.5)

  (fast / very fast: 2.12x, against 42/20 = 2.1). Real speed-ups on a GPU fall short of FLOP ratios
  for small layers, so these are the sizes the fps numbers suggest, not the paper's unknown ones.

The discriminator (§3.1.1) is conditional, D(I | I^C): the image (restored or ground truth) and the
compressed input bicubic up-sampled to its size are stacked on channels. It is `layers` 3x3 convs with
stride 1 and no padding, LeakyReLU after each, the width doubled every two layers, then a 1x1 conv to
one logit per pixel (the paper gives no depth and no final kernel: a 1x1 final conv keeps the shrink
at exactly 2 pixels per 3x3 layer). With the default 8 layers (64, 64, 128, ..., 512, 512) each pixel's
decision sees 17x17 input pixels, just over one 16x16 H.264 macroblock; the cost is ~4.7 M MACs per
pixel (~15x the generator), so a CPU trainer may pass fewer layers or channels.

The per-pixel sigmoid decisions are averaged over 16x16 sub-patches (average pooling, `sub_patch`), and
eq. 4 (`discriminator_loss`) and eq. 7 (`adversarial_loss`) are taken on those sub-patch probabilities,
averaged over sub-patches and batch. The discriminator returns logits; the sigmoid is applied in the
losses, with the probabilities clamped to [eps, 1 - eps] so the logs stay finite. An input of H x W
gives (H - 2 layers) x (W - 2 layers) logits and floor of that / sub_patch sub-patches per side (a
remainder is dropped), so the smallest usable input is 2 layers + sub_patch per side (`min_size`);
sizes of 2 layers + k sub_patch use every pixel.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.objective import Adversary
from vqe.util.upscale import bicubic_up

SLOPE = 0.2  # LeakyReLU negative slope (the paper gives none)

# model name -> constructor sizes; see the module docstring for how the fast ones were chosen
SIZES = {
    "galteri": dict(channels=64, blocks=15),
    "galteri_fast": dict(channels=32, blocks=11),
    "galteri_veryfast": dict(channels=32, blocks=4),
}


def macs_per_pixel(channels: int, blocks: int) -> float:
    """Conv multiply-accumulates of the generator per output pixel (even output sizes)."""
    c = channels
    quarter = 9 * 3 * c + blocks * 2 * 9 * c * c  # first conv + trunk, at half the size on each side
    full = 9 * c * c + 9 * c * 3  # conv after up-sampling + output conv
    return quarter / 4 + full


def act() -> nn.LeakyReLU:
    return nn.LeakyReLU(SLOPE, True)


def conv3(cin: int, cout: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=padding)


class ResBlock(nn.Module):
    """conv-LeakyReLU-conv plus the identity (no normalisation: the paper names none)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(channels, channels), act(), conv3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Galteri(nn.Module):
    """x: (B, 1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale) in (0, 1), restored directly (no residual)."""

    arch = "galteri"

    def __init__(self, scale: int = 2, *, channels: int = 64, blocks: int = 15) -> None:
        super().__init__()
        if scale < 1 or channels < 1 or blocks < 0:
            raise ValueError(f"Galteri needs scale >= 1, channels >= 1, blocks >= 0; got {scale}, {channels}, {blocks}")
        self.config = dict(channels=channels, blocks=blocks)
        self.n = 0
        self.scale = scale
        self.head = nn.Sequential(conv3(3, channels, stride=2), act())
        self.trunk = nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3(channels, channels), act())
        self.tail = conv3(channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"Galteri is single-frame: expects (B, 1, 3, h, w), got shape {tuple(x.shape)}")
        img = bicubic_up(x[:, 0], self.scale) * 2 - 1  # the paper's input rescaled to [-1, 1]
        h, w = img.shape[-2:]
        if h % 2 or w % 2:  # the stride-2 head and x2 up-sampling need even sizes
            img = F.pad(img, (0, w % 2, 0, h % 2), mode="replicate")
        y = torch.tanh(self.tail(self.up(self.trunk(self.head(img)))))
        return (y[..., :h, :w] + 1) / 2


def patch_probabilities(logits: torch.Tensor, sub_patch: int = 16) -> torch.Tensor:
    """Per-pixel logits (B, 1, H', W') -> sigmoid decisions averaged over sub_patch^2 sub-patches (§3.1.1)."""
    if min(logits.shape[-2:]) < sub_patch:
        raise ValueError(f"a logit map of {tuple(logits.shape[-2:])} has no full {sub_patch}x{sub_patch} sub-patch; "
                         f"the discriminator needs inputs of at least 2 * layers + {sub_patch} per side")
    return F.avg_pool2d(torch.sigmoid(logits), sub_patch)


def _clamped(p: torch.Tensor, eps: float) -> torch.Tensor:
    return p.clamp(eps, 1 - eps)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, sub_patch: int = 16,
                       eps: float = 1e-6) -> torch.Tensor:
    """Eq. 4, -log D(I|I^C) - log(1 - D(I^R|I^C)), on sub-patch probabilities, mean over sub-patches and batch."""
    real = _clamped(patch_probabilities(real_logits, sub_patch), eps)
    fake = _clamped(patch_probabilities(fake_logits, sub_patch), eps)
    return -torch.log(real).mean() - torch.log(1 - fake).mean()


def adversarial_loss(fake_logits: torch.Tensor, sub_patch: int = 16, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 7, -log D(I^R|I^C), on sub-patch probabilities, mean over sub-patches and batch."""
    return -torch.log(_clamped(patch_probabilities(fake_logits, sub_patch), eps)).mean()


def disc_widths(channels: int, layers: int) -> list[int]:
    """Output channels of the 3x3 convs: `channels`, doubled every two layers."""
    return [channels * 2 ** (i // 2) for i in range(layers)]


class GalteriDiscriminator(nn.Module):
    """(image, condition), each (B, 3, H, W) in [0, 1] -> per-pixel logits (B, 1, H - 2 layers, W - 2 layers)."""

    def __init__(self, *, channels: int = 64, layers: int = 8, sub_patch: int = 16) -> None:
        super().__init__()
        if channels < 1 or layers < 1 or sub_patch < 1:
            raise ValueError(f"GalteriDiscriminator needs positive sizes, got {channels}, {layers}, {sub_patch}")
        self.config = dict(channels=channels, layers=layers, sub_patch=sub_patch)
        self.layers, self.sub_patch = layers, sub_patch
        mods: list[nn.Module] = []
        cin = 6
        for cout in disc_widths(channels, layers):
            mods += [conv3(cin, cout, padding=0), act()]
            cin = cout
        mods.append(nn.Conv2d(cin, 1, 1))
        self.net = nn.Sequential(*mods)

    @property
    def min_size(self) -> int:
        """The smallest input side giving one full sub-patch of decisions."""
        return 2 * self.layers + self.sub_patch

    def forward(self, image: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        if image.shape != condition.shape or image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image and condition must both be (B, 3, H, W), got {tuple(image.shape)} "
                             f"and {tuple(condition.shape)}")
        if min(image.shape[-2:]) <= 2 * self.layers:
            raise ValueError(f"input {tuple(image.shape[-2:])} is too small for {self.layers} unpadded 3x3 layers "
                             f"(they remove {2 * self.layers} pixels per side); use at least {self.min_size}")
        return self.net(torch.cat([image, condition], 1) * 2 - 1)

    def patch_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """This discriminator's sub-patch decisions (B, 1, H'/sub_patch, W'/sub_patch)."""
        return patch_probabilities(logits, self.sub_patch)


def adversary(cfg: dict[str, Any], patch: int) -> Adversary:
    """Seed 002 eqs. 4 and 7: a conditional sub-patch discriminator, D(I | I^C)."""

    disc = GalteriDiscriminator(**cfg)
    return Adversary(disc, lambda d, real, fake, c: discriminator_loss(d(real, c), d(fake, c)),
                     lambda d, real, fake, c: adversarial_loss(d(fake, c)))
