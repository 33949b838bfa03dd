"""SUPERVEGAN (seed 001, §III and §V-A): a two-stage generator that jointly removes compression artifacts and
super-resolves, trained progressively with a GAN; the first runnable implementation (the paper ships no code).

Generator (§III-A). The 2N+1 decoded frames go through a temporal reduction block of 3-D convolutions without
temporal padding (2N+1 -> 1 frame), then a shared trunk that splits into two branches at the end:

* Stage A: the filter branch predicts dynamic up-sampling filters (DUF, Jo et al. 2018): 5x5 per output pixel,
  softmax-normalised over the 25 taps, applied to the centre frame X_t (eq. 4); the residual branch adds R^A:
  Y^A = U X_t + R^A (eq. 3). Trained with MSE only against the ground truth at Stage A's resolution (eq. 6).
* Stage B: more layers on Stage A's trunk features (a 1-level U-Net) produce R^B at the target resolution:
  Y^B = bicubic(Y^A) + R^B (eq. 2); at inference Y = Y^B (alpha = 1).

Variants; our data is 2x down-sampled (decoded 180p -> 360p ground truth), so `scale` = 2 for both:

* "g2" = SUPERVEGAN-2 (§V-A-4) exactly: an extra stride-2 conv at the very beginning, so most work is at half the
  input size; Stage A does not up-sample (one 5x5 filter per input pixel: artifact removal only, Y^A at the input
  size); Stage B up-samples x2: Y = bicubic_x2(Y^A) + R^B.
* "g4" = SUPERVEGAN-4's design at our scale: no stride-2 conv; Stage A up-samples x2 with DUF (4 filters of 5x5
  per input pixel, eq. 4 with u, v in {0, 1}). The paper's Stage B then up-samples x2 again (4x overall); our task
  is 2x, so at `scale` = 2 Stage B keeps Y^A's resolution: Y = Y^A + R^B, no bicubic. This is a deviation from
  the paper. `scale` = 4 gives the paper's G4 (Y = bicubic_x2(Y^A) + R^B).

Progressive training (§III-B, §V-A-3): `schedule` gives the phase and the blending alpha of eq. 5 (`blend`);
phase 1 trains `stage_a_parameters()` only. Losses (eq. 8): `generator_loss`, `discriminator_loss`; the MSE and
VGG terms of eqs. 6-7 are the trainer's. `SuperVEGANDiscriminator` is the discriminator (§III-B).

Choices the paper leaves open (Figs. 4-6 are not in our copy of the paper, only their captions, which say that
Conv2D blocks are 128-channel 3x3 stride 1 and Conv3D blocks 128-channel stride 1 unless specified):

* Depths (defaults): `blocks_a` = 4 shared trunk residual blocks, `branch_blocks` = 1 residual block in each of
  the filter and residual branches, `blocks_b` = 2 residual blocks at each of the U-Net's three places (encoder,
  bottleneck, decoder). Residual block: conv3x3-ReLU-conv3x3 plus identity, no normalisation, ESRGAN's 0.1-scaled
  Kaiming init (`vqe.models.parts.rrdb.ResidualBlock`). ReLU everywhere in the generator (as DUF).
* Front: a per-frame 3x3 conv lifts 3 -> `channels` channels (a Conv3D with kernel 1x3x3); g2 puts the paper's
  extra stride-2 conv (kernel 1x3x3, stride 1x2x2, 3 -> `channels`) before it.
* Temporal reduction: N residual units, each conv3x3x3 without temporal padding (T -> T-2) + ReLU + per-frame
  conv3x3, added to the inner T-2 frames of its input; N units take 2N+1 frames to 1. Every 3-D conv is written
  as an exactly equivalent Conv2d (frames on the batch axis, or 3 consecutive frames stacked on channels),
  because `vqe.models.build.load_model` converts the weights to channels-last, which refuses 5-D tensors.
* g2's half-resolution features are brought back to the input size by pixel shuffle: the filter conv outputs
  4 x 25 logits per half-resolution pixel and PixelShuffle(2) gives 25 per input pixel; R^A likewise (12 ->
  3 channels). g4 uses the same convs: 4 x 25 logits are the 4 sub-pixel filters of eq. 4 (channel 4k + 2v + u
  for tap k = 5(j+2) + (i+2)), and R^A is pixel-shuffled to 2x.
* Stage B's input is the trunk's features (before the split). Its U-Net level is at the feature resolution
  (down: stride-2 conv; up: conv to 4x channels + PixelShuffle(2); skip: concatenation + 1x1 conv); then
  pixel-shuffle x2 steps (conv to 4x channels, PixelShuffle, ReLU) reach the target size, and a 3x3 conv gives R^B.
  Bicubic is torch's (a = -0.75, `vqe.util.upscale.bicubic_up`); up_NN of eq. 5 is nearest neighbour.
* Initialisation: the last convs of R^A and R^B start at zero and the filter-logit conv has zero weights and a
  bias of log((1 - 0.02) * target + 0.02 / 25): the target is the identity (centre tap) for g2 and bilinear x2
  (align_corners=False) for g4, mixed with 2% of a uniform filter so no tap's softmax gradient starts vanishing.
  An untrained model is then ~bicubic(X_t) (g2) or ~bilinear(X_t) (g4 at scale 2).
* Any h, w: the input frames are padded (replicate) to a multiple of 4 (g2) or 2 (g4) for the strides, and the
  outputs cropped back; the DUF reads the centre frame with replicate padding at the borders.
* Schedule: phase lengths from `fractions` (100/100/200 epochs = 0.25/0.25/0.5), boundaries rounded to the
  nearest iteration; alpha rises linearly over phase 2 (the paper gives no shape): (it - end_1) / len_2, i.e.
  1/len_2 on the phase's first iteration and exactly 1 on its last.
* Discriminator: see `SuperVEGANDiscriminator`.

Size at the defaults (scale 2, 5 frames): g2 6.96M parameters (Stage A 3.23M), 1.20 MFLOPs per output pixel
(Stage A 0.63M); g4 6.22M (Stage A 3.08M), 3.21 MFLOPs per output pixel (Stage A 2.14M): g4 works at the full
input size, which the paper's G4 (4x) offsets with a 2x smaller input.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.objective import Adversary, View, down_to
from vqe.models.parts.rrdb import ResidualBlock
from vqe.util.upscale import bicubic_up

VARIANTS = ("g2", "g4")
FILTER = 5  # DUF filter side (§III-A-2, as DUF)
TAPS = FILTER * FILTER
FILTER_INIT_UNIFORM = 0.02  # share of a uniform 5x5 filter in the initial DUF filters


# --- building blocks ---------------------------------------------------------------------------------------


def per_frame(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 2-D module applied to every frame of x (B, T, C, H, W): a Conv3D with a 1 x k x k kernel."""
    return conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class TemporalConv(nn.Module):
    """Conv3d(c_in, c_out, 3, padding=(0, 1, 1)) on (B, T, C, H, W) -> (B, T-2, c_out, H, W), as a Conv2d over
    3 consecutive frames stacked on channels (4-D weights: channels-last conversion refuses 5-D ones)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3 * c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1] - 2
        windows = torch.cat([x[:, i:i + t] for i in range(3)], 2)  # channel i * C + c holds frame t' + i
        return per_frame(self.conv, windows)


class TemporalUnit(nn.Module):
    """One step of the temporal reduction block: T -> T-2 frames, residual on the inner frames."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_t = TemporalConv(channels, channels)
        self.conv_s = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1:-1] + per_frame(self.conv_s, torch.relu(self.conv_t(x)))


def res_blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(count)))


def shuffle_up(channels: int) -> list[nn.Module]:
    """x2 up-sampling of features: conv to 4x channels, PixelShuffle(2), ReLU."""
    return [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(inplace=True)]


def apply_duf(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Eq. 4: x (B, C, h, w), filters (B, 25, r*r, h, w) (tap k = 5(j+2) + (i+2), sub-pixel s = r*v + u)
    -> (B, C, r*h, r*w) with out[r*y + v, r*x + u] = sum_{j,i} F[k, s, y, x] * x[y + j, x + i]; the borders
    are read with replicate padding."""
    b, c, h, w = x.shape
    r = math.isqrt(filters.shape[2])
    if filters.shape != (b, TAPS, r * r, h, w):
        raise ValueError(f"DUF filters must be (B, {TAPS}, r*r, h, w) = ({b}, {TAPS}, r*r, {h}, {w}) for x of "
                         f"shape {tuple(x.shape)}, got {tuple(filters.shape)}")
    pad = FILTER // 2
    patches = F.unfold(F.pad(x, (pad,) * 4, mode="replicate"), FILTER).view(b, c, TAPS, h, w)
    out = torch.einsum("bckhw,bkshw->bcshw", patches, filters)
    return F.pixel_shuffle(out.reshape(b, c * r * r, h, w), r)


def initial_filters(r: int) -> torch.Tensor:
    """(25, r*r) initial DUF filters: identity (r = 1) or bilinear x2 (r = 2, align_corners=False), with
    FILTER_INIT_UNIFORM of a uniform filter mixed in."""
    if r == 1:
        taps = torch.zeros(FILTER)
        taps[FILTER // 2] = 1
        rows = [taps]
    else:  # sub-pixel v sits at y + (2v - 1) / 4: 3/4 on the own row, 1/4 on the neighbour toward it
        rows = [torch.tensor([0, 0.25, 0.75, 0, 0]), torch.tensor([0, 0, 0.75, 0.25, 0])]
    target = torch.stack([torch.outer(rv, ru).flatten() for rv in rows for ru in rows], 1)
    return (1 - FILTER_INIT_UNIFORM) * target + FILTER_INIT_UNIFORM / TAPS


# --- the two stages ------------------------------------------------------------------------------------------


class StageA(nn.Module):
    """Frames (B, T, 3, H, W) -> (Y^A at `r` times the input size, trunk features at the input size / `down`)."""

    def __init__(self, variant: str, n: int, channels: int, blocks: int, branch_blocks: int) -> None:
        super().__init__()
        c = channels
        self.down = nn.Conv2d(3, c, 3, stride=2, padding=1) if variant == "g2" else None
        self.head = nn.Conv2d(c if self.down is not None else 3, c, 3, padding=1)
        self.reduce = nn.Sequential(*(TemporalUnit(c) for _ in range(n)))
        self.trunk = res_blocks(c, blocks)
        self.filter_branch = nn.Sequential(res_blocks(c, branch_blocks), nn.Conv2d(c, 4 * TAPS, 3, padding=1))
        self.residual_branch = nn.Sequential(res_blocks(c, branch_blocks), nn.Conv2d(c, 12, 3, padding=1),
                                             nn.PixelShuffle(2))
        self.r = 1 if variant == "g2" else 2  # DUF up-sampling
        logits, last = self.filter_branch[-1], self.residual_branch[-2]
        nn.init.zeros_(logits.weight)
        logits.bias.data.copy_(initial_filters(self.r).log().repeat_interleave(4 // self.r ** 2, 1).flatten())
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = x if self.down is None else torch.relu(per_frame(self.down, x))
        feat = self.reduce(torch.relu(per_frame(self.head, feat)))[:, 0]
        feat = feat + self.trunk(feat)
        return apply_duf(x[:, x.shape[1] // 2], self.filters(feat)) + self.residual_branch(feat), feat

    def filters(self, feat: torch.Tensor) -> torch.Tensor:
        """Softmax-normalised DUF filters (B, 25, r*r, h, w) at the centre frame's size."""
        logits = self.filter_branch(feat)  # channel 4k + s
        if self.r == 1:  # g2: 4 sub-positions of a half-resolution pixel -> 1 filter per input pixel
            logits = F.pixel_shuffle(logits, 2).unsqueeze(2)
        else:
            logits = logits.unflatten(1, (TAPS, 4))
        return logits.softmax(1)


class StageB(nn.Module):
    """Trunk features -> R^B: a 1-level U-Net, then `up_steps` pixel-shuffle x2 steps, then a 3x3 conv."""

    def __init__(self, channels: int, blocks: int, up_steps: int) -> None:
        super().__init__()
        c = channels
        self.enc = res_blocks(c, blocks)
        self.bottom = nn.Sequential(nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                    res_blocks(c, blocks), *shuffle_up(c))
        self.dec = nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.ReLU(inplace=True), res_blocks(c, blocks))
        self.tail = nn.Sequential(*(m for _ in range(up_steps) for m in shuffle_up(c)))
        self.last = nn.Conv2d(c, 3, 3, padding=1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        e = self.enc(feat)
        return self.last(self.tail(self.dec(torch.cat([e, self.bottom(e)], 1))))


# --- the generator ---------------------------------------------------------------------------------------------


class SuperVEGAN(nn.Module):
    """x: (B, 2n+1, 3, h, w) in [0, 1] -> Y = Y^B (B, 3, h*scale, w*scale); see the module docstring."""

    arch = "supervegan"

    def __init__(self, scale: int = 2, *, variant: str = "g2", n: int = 2, channels: int = 128, blocks_a: int = 4,
                 branch_blocks: int = 1, blocks_b: int = 2) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"SUPERVEGAN variant must be one of {VARIANTS}, got {variant!r}")
        # Y^A's size / the input's (1 for g2, 2 for g4): Y^A of eq. 6 is the ground truth down-sampled by
        # scale / stage_a_scale = stage_b_scale
        self.stage_a_scale = 1 if variant == "g2" else 2
        if scale < self.stage_a_scale or scale & (scale - 1) or scale % self.stage_a_scale:
            raise ValueError(f"SUPERVEGAN {variant} needs a power-of-two scale >= {self.stage_a_scale}, got {scale}")
        if n < 0 or min(channels, blocks_a, branch_blocks, blocks_b) < 1:
            raise ValueError("SUPERVEGAN needs n >= 0 and channels, blocks_a, branch_blocks, blocks_b >= 1")
        self.config = {"variant": variant, "n": n, "channels": channels, "blocks_a": blocks_a,
                       "branch_blocks": branch_blocks, "blocks_b": blocks_b}
        self.variant, self.n, self.scale = variant, n, scale
        self.stage_b_scale = scale // self.stage_a_scale  # Y^B's size / Y^A's (bicubic and up_NN factor)
        self.multiple = 4 if variant == "g2" else 2  # stride-2 front (g2) and the U-Net's down-sampling
        feature_down = 2 if variant == "g2" else 1
        self.stage_a = StageA(variant, n, channels, blocks_a, branch_blocks)
        self.stage_b = StageB(channels, blocks_b, int(math.log2(scale * feature_down)))

    def stage_a_parameters(self) -> list[nn.Parameter]:
        """Phase 1 trains these only (§III-B)."""
        return list(self.stage_a.parameters())

    def stage_b_parameters(self) -> list[nn.Parameter]:
        return list(self.stage_b.parameters())

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 2 * self.n + 1 or x.shape[2] != 3:
            raise ValueError(f"SUPERVEGAN expects (B, {2 * self.n + 1}, 3, h, w), got {tuple(x.shape)}")
        ph, pw = -x.shape[-2] % self.multiple, -x.shape[-1] % self.multiple
        if not (ph or pw):
            return x
        return F.pad(x.flatten(0, 1), (0, pw, 0, ph), mode="replicate").unflatten(0, x.shape[:2])

    def forward_a(self, x: torch.Tensor) -> torch.Tensor:
        """Y^A alone (phase 1: Stage B is not needed)."""
        h, w, s = x.shape[-2], x.shape[-1], self.stage_a_scale
        return self.stage_a(self._padded(x))[0][..., :h * s, :w * s]

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Y^A at Stage A's resolution, Y^B = bicubic(Y^A) + R^B at the output resolution), eqs. 2-3."""
        h, w = x.shape[-2:]
        y_a, feat = self.stage_a(self._padded(x))
        y_b = bicubic_up(y_a, self.stage_b_scale) + self.stage_b(feat)
        sa, s = self.stage_a_scale, self.scale
        return y_a[..., :h * sa, :w * sa], y_b[..., :h * s, :w * s]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[1]

    def training_view(self, lq: torch.Tensor, gt: torch.Tensor, it: int, iters: int, side: Optional[torch.Tensor]) -> View:
        """Seed 001 §III-B: phase 1 trains Stage A alone (MSE on Y^A, the ground truth at its resolution);
        phases 2-3 score the blend Y^AB = (1 - alpha) up_NN(Y^A) + alpha Y^B, alpha 0 -> 1 over phase 2 (eq. 5),
        and keep Y^A's MSE (eq. 6)."""

        phase, alpha = schedule(it, iters)
        logs = {"phase": float(phase), "alpha": alpha}
        if phase == 1:  # Stage B is not run: nothing but Y^A's MSE is scored
            y_a = self.forward_a(lq)
            return View(y_a, F.mse_loss(y_a, down_to(gt, y_a.shape)), False, logs)
        y_a, y_b = self.forward_stages(lq)
        return View(self.blend(y_a, y_b, alpha), F.mse_loss(y_a, down_to(gt, y_a.shape)), True, logs)

    def blend(self, y_a: torch.Tensor, y_b: torch.Tensor, alpha: Union[float, torch.Tensor]) -> torch.Tensor:
        """Eq. 5: Y^AB = (1 - alpha) up_NN(Y^A) + alpha Y^B (up_NN: nearest x2 for g2, identity for g4 at 2x)."""
        up = y_a if self.stage_b_scale == 1 else F.interpolate(y_a, scale_factor=self.stage_b_scale, mode="nearest")
        return (1 - alpha) * up + alpha * y_b


# --- progressive schedule and losses ----------------------------------------------------------------------


def schedule(it: int, iters: int, fractions: tuple[float, float, float] = (0.25, 0.25, 0.5)) -> tuple[int, float]:
    """(phase 1..3, alpha) at iteration `it` (1-based) of `iters` (§III-B; 100/100/200 epochs in §V-A-3).

    Phase 1: alpha = 0 (Stage A alone); phase 2: alpha = (it - end_1) / len_2, linear up to exactly 1 on the
    phase's last iteration (our choice: the paper gives no shape); phase 3: alpha = 1. The phase ends are
    iters * cumulative fraction, rounded to the nearest iteration (halves up)."""
    if iters < 1 or not 1 <= it <= iters:
        raise ValueError(f"schedule needs 1 <= it <= iters, got it={it}, iters={iters}")
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"schedule needs 3 non-negative fractions with a positive sum, got {fractions}")
    total = sum(fractions)
    end1 = math.floor(iters * fractions[0] / total + 0.5)
    end2 = math.floor(iters * (fractions[0] + fractions[1]) / total + 0.5)
    if it <= end1:
        return 1, 0.0
    if it <= end2:
        return 2, (it - end1) / (end2 - end1)
    return 3, 1.0


def generator_loss(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 8, L_G = -log D(Y^) (non-saturating), from logits: softplus(-l) = -log sigmoid(l); batch mean."""
    return F.softplus(-d_fake_logits).mean()


def discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 8, L_D = -log D(Y) - log(1 - D(Y^)), from logits: softplus(-real) + softplus(fake); batch means."""
    return F.softplus(-d_real_logits).mean() + F.softplus(d_fake_logits).mean()


# --- discriminator --------------------------------------------------------------------------------------------


class SuperVEGANDiscriminator(nn.Module):
    """(B, 3, patch, patch) in [0, 1] -> one real/fake logit per image (B, 1) (§III-B: convolutional
    down-sampling blocks and a fully-connected layer at the end).

    Fig. 6 is not in our copy of the paper; we chose SRGAN's layout without batch norm: `levels` blocks of
    conv3x3 stride 1 + conv3x3 stride 2, each followed by LeakyReLU(0.2), widths `channels` * 2^i capped at
    `max_channels` (64, 128, 256, 512), then one Linear layer to the logit. The Linear layer fixes the input size:
    `patch` is the side of the ground-truth patches it judges (each stride-2 conv takes a side s to ceil(s / 2)).
    """

    def __init__(self, patch: int = 96, channels: int = 64, levels: int = 4, max_channels: int = 512) -> None:
        super().__init__()
        if patch < 1 or channels < 1 or levels < 1 or max_channels < 1:
            raise ValueError("SuperVEGANDiscriminator needs patch, channels, levels and max_channels >= 1")
        self.config = {"patch": patch, "channels": channels, "levels": levels, "max_channels": max_channels}
        self.patch = patch
        layers: list[nn.Module] = []
        c_in, side = 3, patch
        for i in range(levels):
            c = min(channels * 2 ** i, max_channels)
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                       nn.Conv2d(c, c, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c_in, side = c, (side + 1) // 2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * side * side, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.patch, self.patch):
            raise ValueError(f"SuperVEGANDiscriminator was built for {self.patch}x{self.patch} patches (its "
                             f"fully-connected layer has a fixed input size), got {x.shape[-2]}x{x.shape[-1]}")
        return self.fc(self.features(x * 2 - 1).flatten(1))


def adversary(cfg: dict[str, Any], patch: int) -> Adversary:
    """Seed 001 eq. 8: the standard (non-saturating) GAN with a conv + fully-connected discriminator."""

    disc = SuperVEGANDiscriminator(patch=patch, **cfg)
    return Adversary(disc, lambda d, real, fake, c: discriminator_loss(d(real), d(fake)),
                     lambda d, real, fake, c: generator_loss(d(fake)))
