"""TecoGAN (Chu et al. 2020, "Learning temporal coherence via self-supervision for GAN-based video generation"), the
Table 1 baseline of seed 000 §IV-C: "TecoGAN modified with our data, using 2x upscaling and ping-pong consistency
loss". Written from the paper and the public TensorFlow code (thunil/TecoGAN, lib/frvsr.py and lib/Teco.py).

Generator (FRVSR-style, frame-recurrent). For every frame t: FNet estimates the LR flow from (x_{t-1}, x_t); it is
up-sampled x`scale` (bilinear, values times `scale`) and warps the previous output g_{t-1} onto frame t; the warped
frame goes through space-to-depth (`F.pixel_unshuffle` by `scale`), is concatenated after x_t, and a conv + ReLU,
`blocks` residual blocks (conv-ReLU-conv + identity), log2(scale) stride-2 transposed convs + ReLU and a last conv give
a residual added to bicubic(x_t). `SpatioTemporalDiscriminator` is TecoGAN's conditional D_s,t; the pure functions
`ping_pong_sequence`, `ping_pong_loss`, `ping_pong_d_inputs`, `discriminator_loss`, `generator_adv_loss`,
`feature_loss` and `warping_loss` are TecoGAN's loss pieces. Content (MSE) and VGG losses, D's adaptive update
(its "Dbalance") and the loss weights are the shared trainer's.

Sliding-window inference (a deviation, forced by our evaluation): `vqe enhance` and the evaluation feed every model
windows of 2n+1 frames, so the recurrence is TRUNCATED to the window. `forward(x)` starts at frame t-n with the
previous output set to ZEROS (TecoGAN's own first-frame rule: the code concatenates zeros in place of the warped
previous output; we keep it, not bicubic, because that is the start state the generator sees in training, in
`forward_sequence` as in TecoGAN), recurs over frames t-n..t and returns the output for frame t; frames t+1..t+n are
unused (TecoGAN is causal). So frame t's output carries at most n frames of recurrent history instead of the whole
clip's, each window recomputes its n+1 generator steps (and n FNet passes), and `enhance` repeats the first frame
at a clip's start. `forward(x) == forward_sequence(x[:, :n + 1])[0][:, -1]`.

Choices and deviations from the public code:

* Scale: power-of-two `scale` (ours is 2: one transposed conv; TecoGAN's 4x has two). Transposed convs are 3x3,
  stride 2, padding 1, output_padding 1 (exactly 2x; TF's 'SAME' places the kernel half an HR pixel differently).
* Defaults as the public code: `channels` = 64, `blocks` = 10 (its FLAGS.num_resblock), FNet base width
  `flow_channels` = 32 (encoder 32-64-128 with 2x2 max-pooling, decoder 256-128-64 with bilinear x2, output convs
  32 -> 2, tanh x 24 LR pixels: its "max velocity"), LeakyReLU(0.2) in FNet and D, ReLU in G.
* Any h, w: only FNet needs a size constraint (three max-pools: a multiple of 8); it pads its input (replicate)
  and crops the flow back. The generator is fully convolutional at the exact input size.
* Initialisation: Xavier-uniform weights and zero biases everywhere (as TF-slim's xavier_initializer), except the
  generator's last conv, which starts at ZERO (the repo convention, not TecoGAN's: its last conv is Xavier too), so
  an untrained model returns exactly bicubic(x_t).
* Flow convention: (B, 2, h, w), channel 0 = x (horizontal), channel 1 = y, in pixels; warp(img, f)[y, x] =
  img[y + f_y, x + f_x], bilinear, border replicated (`grid_sample`). TF's dense_image_warp reads img[y - f0, x - f1]
  with f0 = y: a sign and order convention only, learned by FNet either way (no TF weights are loaded).
* Flow up-sampling: torch bilinear (align_corners=False) x scale; TecoGAN's `upscale_four` is a one-sided bilinear.
* All convs are 2-D (`load_model` converts weights to channels-last, which refuses 5-D tensors).
* The output is not clamped (nor is it in TecoGAN); the recurrence feeds it back unclamped, with gradients through
  the whole sequence (TecoGAN back-propagates through the recurrence too).
* Ping-pong loss: the brief's mean squared difference. TecoGAN's paper writes an L2 norm, its code a mean L1.
* Warping loss: the mean over all elements; TecoGAN sums over channels and averages over pixels (3x ours).
* D: TecoGAN's discriminator_F: conv3x3 + LReLU, then `levels` blocks of conv4x4 stride 2 (no bias) + batch norm +
  LReLU, widths 64, 64, 128, 256, then a channel-wise dense layer (a 1x1 conv) per patch. We return logits (the
  losses use softplus, numerically stable, instead of log(sigmoid + eps)). Its 27 input channels are stacked
  frame-major (frame 0 RGB, frame 1 RGB, ...) where TecoGAN interleaves RRRGGGBBB: the same information.
  All 27 channels are mapped to [-1, 1] (TecoGAN: HR in [-1, 1], the LR condition in [0, 1]). The condition is
  the repo's bicubic up-sampling (`vqe.util.upscale.bicubic_up`, as the brief asks; TecoGAN's code resizes it bilinearly).
  The middle frame of the warped triplet is copied, not warped with a zero flow (the same up to interpolation).
  TecoGAN's optional crop of the warped triplet's border (crop_dt) is not implemented. TecoGAN's batch norm always
  normalises with the batch's statistics: keep D in train mode when using it.
* D's triplet flows are detached (TecoGAN: tf.stop_gradient, no gradient from D into FNet).

Size at the defaults (scale 2): 2,531,429 parameters (FNet 1,745,506, the generator proper 785,923); D_s,t 803,329.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from vqe.models.parts.flow import upscale_flow, warp
from vqe.models.parts.objective import Adversary, View
from vqe.util.upscale import bicubic_up

MAX_FLOW = 24.0  # FNet's tanh bound in LR pixels (TecoGAN's "max velocity")
FNET_MULTIPLE = 8  # FNet's three 2x2 max-pools
D_IN_CHANNELS = 27  # 3 frames x 3 colours x (original, warped, LR condition)
LAYER_NORMS = (12.0, 14.0, 24.0, 100.0)  # TecoGAN's hard-coded per-layer scales of its D feature loss
LAYER_RANGE = 0.02  # TecoGAN's "Fix_Range": every scaled layer loss is ~this


def xavier_(module: nn.Module) -> None:
    """Xavier-uniform weights, zero biases, for every conv (TF-slim's initialisation in TecoGAN)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# --- flow -----------------------------------------------------------------------------------------------------


def conv_pair(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]


class FNet(nn.Module):
    """(frame t-1, frame t), each (N, 3, h, w) -> LR flow (N, 2, h, w) that warps frame t-1 onto frame t
    (TecoGAN's encoder-decoder; any h, w: padded to a multiple of 8 inside)."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = []
        for c_in, c_out in ((6, c), (c, 2 * c), (2 * c, 4 * c)):
            layers += [*conv_pair(c_in, c_out), nn.MaxPool2d(2)]
        for c_in, c_out in ((4 * c, 8 * c), (8 * c, 4 * c), (4 * c, 2 * c)):
            layers += [*conv_pair(c_in, c_out), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
        layers += [nn.Conv2d(2 * c, c, 3, padding=1), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(c, 2, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        xavier_(self)

    def forward(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        h, w = cur.shape[-2:]
        x = torch.cat((prev, cur), 1)
        ph, pw = -h % FNET_MULTIPLE, -w % FNET_MULTIPLE
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return torch.tanh(self.net(x)[..., :h, :w]) * MAX_FLOW


# --- generator ------------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """TecoGAN's residual block: conv-ReLU-conv plus identity, no scaling, no normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class TecoGAN(nn.Module):
    """x: (B, 2n+1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale): frame t from the recurrence over t-n..t
    (see the module docstring for the truncation)."""

    arch = "tecogan"

    def __init__(self, scale: int = 2, *, n: int = 2, channels: int = 64, blocks: int = 10,
                 flow_channels: int = 32) -> None:
        super().__init__()
        if scale < 1 or scale & (scale - 1):
            raise ValueError(f"TecoGAN needs a power-of-two scale, got {scale}")
        if n < 0 or blocks < 0 or min(channels, flow_channels) < 1:
            raise ValueError("TecoGAN needs n >= 0, blocks >= 0 and channels, flow_channels >= 1")
        self.config = {"n": n, "channels": channels, "blocks": blocks, "flow_channels": flow_channels}
        self.n, self.scale = n, scale
        c = channels
        self.fnet = FNet(flow_channels)
        self.head = nn.Sequential(nn.Conv2d(3 + 3 * scale * scale, c, 3, padding=1), nn.ReLU(inplace=True))
        self.trunk = nn.Sequential(*(ResBlock(c) for _ in range(blocks)))
        self.up = nn.Sequential(*(m for _ in range(int(math.log2(scale)))
                                  for m in (nn.ConvTranspose2d(c, c, 3, 2, 1, output_padding=1), nn.ReLU(True))))
        self.last = nn.Conv2d(c, 3, 3, padding=1)
        xavier_(self.head)
        xavier_(self.trunk)
        xavier_(self.up)
        nn.init.zeros_(self.last.weight)  # untrained model = bicubic(x_t) (the repo convention, not TecoGAN's)
        nn.init.zeros_(self.last.bias)

    def generate(self, lr_t: torch.Tensor, warped_prev: torch.Tensor) -> torch.Tensor:
        """One generator pass: x_t (N, 3, h, w) and the warped previous output (N, 3, H, W) -> g_t."""
        feat = self.head(torch.cat((lr_t, F.pixel_unshuffle(warped_prev, self.scale)), 1))
        return self.last(self.up(self.trunk(feat))) + bicubic_up(lr_t, self.scale)

    def first(self, lr_0: torch.Tensor) -> torch.Tensor:
        """The first frame of a recurrence: the previous output is zeros (TecoGAN's rule)."""
        b, c, h, w = lr_0.shape
        return self.generate(lr_0, lr_0.new_zeros(b, c, h * self.scale, w * self.scale))

    def step(self, lr_t: torch.Tensor, lr_prev: torch.Tensor, out_prev: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrent step: (g_t, the LR flow from x_{t-1} to x_t)."""
        flow = self.fnet(lr_prev, lr_t)
        return self.generate(lr_t, warp(out_prev, upscale_flow(flow, self.scale))), flow

    def forward_sequence(self, lr_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lr_seq (B, T, 3, h, w) -> (outputs (B, T, 3, H, W), LR flows (B, T-1, 2, h, w)); training's recurrence.
        FNet runs once on all T-1 pairs (as TecoGAN), the generator frame by frame."""
        b, t, c, h, w = lr_seq.shape
        if t > 1:
            flows = self.fnet(lr_seq[:, :-1].flatten(0, 1), lr_seq[:, 1:].flatten(0, 1)).unflatten(0, (b, t - 1))
        else:
            flows = lr_seq.new_zeros(b, 0, 2, h, w)
        outs = [self.first(lr_seq[:, 0])]
        for i in range(1, t):
            warped = warp(outs[-1], upscale_flow(flows[:, i - 1], self.scale))
            outs.append(self.generate(lr_seq[:, i], warped))
        return torch.stack(outs, 1), flows

    def training_view(self, lq: torch.Tensor, gt: torch.Tensor, it: int, iters: int, side: Optional[torch.Tensor]) -> View:
        """TecoGAN (Chu et al. 2020): the recurrence over the ping-pong sequence x_1..x_T..x_1 of the batch's
        T aligned frames (`train.frames`), every output scored against its frame's ground truth; its own terms
        are the ping-pong loss (forward against backward outputs) and FNet's warping loss on the LR frames."""

        T = gt.shape[1]
        lr_pp = ping_pong_sequence(lq[:, self.n:self.n + T])  # frame j's own decode is lq[:, n + j]
        outs, flows = self.forward_sequence(lr_pp)
        temporal = {"pingpong": ping_pong_loss(outs, T),
                    "warp": warping_loss(lr_pp[:, 1:], lr_pp[:, :-1], flows)}
        return View(outs.flatten(0, 1), None, True, {}, target=ping_pong_sequence(gt).flatten(0, 1),
                    cond=(lr_pp, flows), temporal=temporal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 2 * self.n + 1 or x.shape[2] != 3:
            raise ValueError(f"TecoGAN expects (B, {2 * self.n + 1}, 3, h, w), got {tuple(x.shape)}")
        return self.forward_sequence(x[:, :self.n + 1])[0][:, -1]


# --- ping-pong --------------------------------------------------------------------------------------------------


def ping_pong_sequence(seq: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> (B, 2T-1, ...): [x_1..x_T, x_{T-1}..x_1] (inputs and targets alike)."""
    return torch.cat((seq, seq.flip(1)[:, 1:]), 1)


def _ping_pong_length(length: int) -> int:
    """T of a ping-pong sequence of `length` = 2T-1 frames (T >= 2)."""
    if length < 3 or length % 2 == 0:
        raise ValueError(f"a ping-pong sequence has 2T-1 frames with T >= 2, got {length}")
    return (length + 1) // 2


def ping_pong_loss(outputs: torch.Tensor, T: int) -> torch.Tensor:
    """Mean squared difference between the forward pass's output of frames 1..T-1 and the backward pass's output of
    the same frames; outputs (B, 2T-1, ...) from `forward_sequence(ping_pong_sequence(x))`."""
    if _ping_pong_length(outputs.shape[1]) != T:
        raise ValueError(f"ping_pong_loss: {outputs.shape[1]} outputs is not 2T-1 for T = {T}")
    return F.mse_loss(outputs[:, :T - 1], outputs[:, T:].flip(1))


def ping_pong_triplet_indices(T: int) -> list[tuple[int, int, int]]:
    """(first frame, forward flow, backward flow) of each D triplet of a ping-pong sequence of 2T-1 frames: frames
    3k..3k+2 (the last (2T-1) % 3 frames unused, as TecoGAN); flow 3k warps frame 3k onto 3k+1, and flow 2T-4-3k,
    of the same frames in the other pass, warps frame 3k+2 onto 3k+1 (TecoGAN reuses both)."""
    return [(3 * k, 3 * k, 2 * T - 4 - 3 * k) for k in range((2 * T - 1) // 3)]


def ping_pong_d_inputs(hr_pp: torch.Tensor, lr_pp: torch.Tensor, lr_flows: torch.Tensor) -> torch.Tensor:
    """D inputs (B*K, 27, H, W) of a ping-pong sequence: hr_pp (B, 2T-1, 3, H, W) (outputs or ground truth),
    lr_pp (B, 2T-1, 3, h, w), lr_flows (B, 2T-2, 2, h, w) from `forward_sequence` (the same flows for real and
    fake, as TecoGAN)."""
    T = _ping_pong_length(hr_pp.shape[1])
    idx = ping_pong_triplet_indices(T)
    k = len(idx)
    scale = hr_pp.shape[-1] // lr_pp.shape[-1]
    frames = hr_pp[:, :3 * k].unflatten(1, (k, 3)).flatten(0, 1)
    lr = lr_pp[:, :3 * k].unflatten(1, (k, 3)).flatten(0, 1)
    flows = torch.stack([torch.stack((lr_flows[:, f], lr_flows[:, b]), 1) for _, f, b in idx], 1)  # B, K, 2, 2..
    flows_hr = upscale_flow(flows.flatten(0, 2), scale).unflatten(0, (-1, 2))
    return triplets(frames, flows_hr, lr)


# --- discriminator ----------------------------------------------------------------------------------------------


def triplets(frames: torch.Tensor, flows_hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """D_s,t's input (N, 27, H, W): frames (N, 3, 3, H, W) as they are, the same warped onto the middle frame
    (flows_hr (N, 2, 2, H, W): [:, 0] warps frame 0 onto 1, [:, 1] frame 2 onto 1; detached), and the LR triplet
    lr (N, 3, 3, h, w) bicubic up-sampled as the condition; each part frame-major (frame 0's RGB first)."""
    if frames.dim() != 5 or frames.shape[1:3] != (3, 3) or lr.shape[1:3] != (3, 3):
        raise ValueError(f"triplets need (N, 3 frames, 3, H, W) frames and LR, got {tuple(frames.shape)}, "
                         f"{tuple(lr.shape)}")
    scale = frames.shape[-1] // lr.shape[-1]
    if (lr.shape[-2] * scale, lr.shape[-1] * scale) != tuple(frames.shape[-2:]):
        raise ValueError(f"triplets: HR {tuple(frames.shape[-2:])} is not an integer multiple of LR "
                         f"{tuple(lr.shape[-2:])}")
    flows = flows_hr.detach()
    warped = torch.stack((warp(frames[:, 0], flows[:, 0]), frames[:, 1], warp(frames[:, 2], flows[:, 1])), 1)
    cond = bicubic_up(lr.flatten(0, 1), scale).unflatten(0, lr.shape[:2])
    return torch.cat((frames.flatten(1, 2), warped.flatten(1, 2), cond.flatten(1, 2)), 1)


class SpatioTemporalDiscriminator(nn.Module):
    """TecoGAN's conditional D_s,t: (N, 27, H, W) in [0, 1] (`triplets`) -> (logits (N, 1, H/2^levels,
    W/2^levels), the `levels` feature maps after each stride-2 block, for `feature_loss`)."""

    def __init__(self, channels: int = 64, levels: int = 4, batch_norm: bool = True) -> None:
        super().__init__()
        if channels < 1 or levels < 1:
            raise ValueError("SpatioTemporalDiscriminator needs channels, levels >= 1")
        self.config = {"channels": channels, "levels": levels, "batch_norm": batch_norm}
        self.head = nn.Sequential(nn.Conv2d(D_IN_CHANNELS, channels, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        blocks, c_in = [], channels
        for i in range(levels):  # widths c, c, 2c, 4c, ... (TecoGAN: 64, 64, 128, 256)
            c_out = channels * 2 ** max(i - 1, 0)
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm),
                                        nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
                                        nn.LeakyReLU(0.2, inplace=True)))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.logits = nn.Conv2d(c_in, 1, 1)  # TecoGAN's channel-wise dense layer
        xavier_(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if x.dim() != 4 or x.shape[1] != D_IN_CHANNELS:
            raise ValueError(f"SpatioTemporalDiscriminator expects (N, {D_IN_CHANNELS}, H, W), got {tuple(x.shape)}")
        h = self.head(x * 2 - 1)
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        return self.logits(h), feats


# --- losses -------------------------------------------------------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """TecoGAN's BCE: -log D(real) - log(1 - D(fake)), from logits (softplus), each a mean over patches."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """TecoGAN's non-saturating -log D(fake), from logits: softplus(-l); mean over patches."""
    return F.softplus(-fake_logits).mean()


def feature_loss(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor],
                 norms: tuple[float, ...] = LAYER_NORMS, weight: float = LAYER_RANGE) -> torch.Tensor:
    """TecoGAN's D feature-space loss for G: sum over layers of weight * mean_pixels(sum_channels |real - fake|)
    / norm (its hard-coded norms suit its D at the default widths); pass the real features detached."""
    if not len(real_feats) == len(fake_feats) == len(norms):
        raise ValueError(f"feature_loss: {len(real_feats)} real, {len(fake_feats)} fake maps, {len(norms)} norms")
    return sum(weight * (r - f).abs().sum(1).mean() / s for r, f, s in zip(real_feats, fake_feats, norms))


def warping_loss(lr_t: torch.Tensor, lr_prev: torch.Tensor, lr_flow: torch.Tensor) -> torch.Tensor:
    """FNet's self-supervision: MSE between x_t and x_{t-1} warped by the flow; (N, 3, h, w) frames and (N, 2, h, w)
    flows, or (B, T-1, ...) of each (e.g. lr_seq[:, 1:], lr_seq[:, :-1], the flows of `forward_sequence`)."""
    if lr_t.dim() == 5:
        lr_t, lr_prev, lr_flow = lr_t.flatten(0, 1), lr_prev.flatten(0, 1), lr_flow.flatten(0, 1)
    return F.mse_loss(warp(lr_prev, lr_flow), lr_t)


def adversary(cfg: dict[str, Any], patch: int) -> Adversary:
    """TecoGAN's spatio-temporal D_s,t on warped triplets of the ping-pong sequence (`TecoGAN.training_view`'s cond:
    the LR sequence and FNet's flows, shared by real and fake). G's term is its -log D(fake) plus D's
    feature-layer loss at `layer_weight` (relative to `adv_weight`: 100 x 0.01 = TecoGAN's layer loss at 1)."""

    cfg = dict(cfg)
    layer_weight = float(cfg.pop("layer_weight", 0.0))
    disc = SpatioTemporalDiscriminator(**cfg)

    def d_inputs(hr: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        lr_pp, flows = cond
        return ping_pong_d_inputs(hr.unflatten(0, lr_pp.shape[:2]), lr_pp, flows)

    def d_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return discriminator_loss(d(d_inputs(real, cond))[0], d(d_inputs(fake, cond))[0])

    def g_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        fake_logits, fake_feats = d(d_inputs(fake, cond))
        loss = generator_adv_loss(fake_logits)
        if layer_weight > 0:
            with torch.no_grad():
                real_feats = d(d_inputs(real, cond))[1]
            loss = loss + layer_weight * feature_loss(real_feats, fake_feats)
        return loss

    return Adversary(disc, d_loss, g_loss)
