"""Training losses.

Stage A (eq. 5): `PixelLoss`, L1 + lambda_ssim * (1 - MS-SSIM), with pytorch-msssim. MS-SSIM
needs the smaller image side to reach `MS_SSIM_MIN_SIDE` = (win_size - 1) * 2^4 + 1 = 161 pixels
(five scales with an 11-tap window); on smaller training patches it falls back to single-scale
SSIM, and says so once.

Stage B (the GAN stage):

* `relativistic_loss(pos, neg)`: the relativistic average GAN loss (ESRGAN form), one function for
  both discriminators and both players: D minimises `relativistic_loss(real, fake)`, G minimises
  `relativistic_loss(fake, real)`.
* `PerceptualLoss` (eq. 9): sum over VGG layers of the feature-map MSE, on the network the config
  names (`perceptual_net`), never another: the paper's VGG-19 relu3_4/relu4_4, whose ImageNet
  checkpoint must already be in the torch hub cache (no offline source; a VQEError naming the key and
  the file otherwise), or VGG-16 relu3_3/relu4_3, provisioned offline (see `vqe.util.weights`); never
  random weights. The VGG is frozen, runs in float32 even under autocast, and is kept out of
  `state_dict()` so it never lands in checkpoints.
* `LpipsLoss`: LPIPS-alex itself as the perceptual term (seed 003's generator pre-training), the
  metric's own frozen model, or LPIPS-VGG ("lpips-vgg"), normalised VGG-16 features under the learned
  head; `perceptual_loss(net)` builds any kind from a config name.
* `ping_pong_loss` (eq. 10): MSE between the forward-time and the reversed-time estimates of the
  same frame.
* `flow_temporal_loss` (the ablation replacing ping-pong): MSE between each generated frame and its
  predecessor warped by the backward flow of the *input* frames (`input_flows`), with the warp of
  `vqe.metrics.temporal`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from pytorch_msssim import ms_ssim, ssim
from torch import Tensor, nn

from vqe.metrics.fidelity import MS_SSIM_MIN_SIDE
from vqe.metrics.flow import flows as _flows
from vqe.metrics.flow import warp
from vqe.metrics.perceptual import distance, features, lpips_model
from vqe.util import weights
from vqe.util.errors import VQEError

log = logging.getLogger(__name__)

__all__ = ["MS_SSIM_MIN_SIDE", "LpipsLoss", "PerceptualLoss", "PixelLoss", "flow_temporal_loss", "input_flows",
           "perceptual_loss", "ping_pong_loss", "relativistic_loss", "ssim_kind"]


def ssim_kind(height: int, width: int) -> str:
    """'ms-ssim' when the patch is large enough for five scales, else 'ssim'."""
    return "ms-ssim" if min(height, width) >= MS_SSIM_MIN_SIDE else "ssim"


class PixelLoss(nn.Module):
    """L1 + lambda * (1 - (MS-)SSIM) on images in [0, 1]."""

    def __init__(self, ssim_weight: float = 1.0) -> None:
        super().__init__()
        self.ssim_weight = ssim_weight
        self.kind: str | None = None

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = (out - target).abs().mean()
        if self.ssim_weight == 0:
            return loss
        kind = ssim_kind(*out.shape[-2:])
        if kind != self.kind:
            log.info("pixel loss: using %s for %dx%d patches", kind.upper(), out.shape[-1], out.shape[-2])
            self.kind = kind
        fn = ms_ssim if kind == "ms-ssim" else ssim
        similarity = fn(out.float(), target.float(), data_range=1.0, size_average=True)
        return loss + self.ssim_weight * (1 - similarity)


# --- adversarial -------------------------------------------------------------------------------

def relativistic_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Relativistic average GAN loss (Jolicoeur-Martineau 2018, ESRGAN form) on raw logits.

    With the critic's raw logits C and D_Ra(a, b) = sigmoid(C(a) - mean C(b)), this is

        0.5 * (BCE(D_Ra(pos, neg), 1) + BCE(D_Ra(neg, pos), 0)),

    means over all elements (PatchGAN logit maps). "pos" is the side that should look more real:

        d_loss = relativistic_loss(C(real), C(fake.detach()))   # discriminator
        g_loss = relativistic_loss(C(fake), C(real))            # generator (symmetric form)

    Written once so both discriminators and both players share exactly one definition. The
    generator, unlike in the standard GAN, gets gradients from the real logits' term too.
    Computed in float32 (the logits may come from autocast).
    """
    pos, neg = pos.float(), neg.float()
    bce = F.binary_cross_entropy_with_logits
    return 0.5 * (bce(pos - neg.mean(), torch.ones_like(pos))
                  + bce(neg - pos.mean(), torch.zeros_like(neg)))


# --- perceptual --------------------------------------------------------------------------------

# net -> (torchvision builder, {layer name: features index}); the paper uses VGG-19.
_VGG: dict[str, tuple[Callable[..., nn.Module], dict[str, int]]] = {
    "vgg19": (torchvision.models.vgg19, {"relu3_4": 17, "relu4_4": 26}),
    "vgg16": (torchvision.models.vgg16, {"relu3_3": 15, "relu4_3": 22}),
    # one deep layer before its activation: Galteri et al. (conv5_3), SUPERVEGAN and ESRGAN (VGG-19 conv5_4)
    "vgg16_conv5_3": (torchvision.models.vgg16, {"conv5_3": 28}),
    "vgg19_conv5_4": (torchvision.models.vgg19, {"conv5_4": 34}),
}
VGG19_CHECKPOINT = "vgg19-dcbb9e9d.pth"  # torchvision's file name; no offline source for it
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_CHECKPOINT


PERCEPTUAL_KEY = "stage_b.loss.perceptual_net / nogan.loss.perceptual_net"  # the keys that name the network


def _vgg19_checked(key: str) -> Path:
    """The VGG-19 checkpoint; a VQEError naming `key` and the file when it is absent (never a substitute)."""
    path = _vgg19_path()
    if not path.is_file():
        raise VQEError(f"parameter {key} is vgg19, but torchvision's VGG-19 ImageNet checkpoint {path} does not "
                       f"exist (it has no offline source; put {VGG19_CHECKPOINT} there, or set {key} to vgg16, "
                       "whose weights `vqe provision` builds offline)")
    return path


def _vgg16_path(key: str = PERCEPTUAL_KEY) -> Path:
    """The VGG-16 checkpoint, built offline first if need be; VQEError naming it if that fails."""
    try:
        return weights.provision_weights(("vgg16",))["vgg16"]
    except VQEError as e:
        raise VQEError(f"parameter {key} is vgg16, but its ImageNet weights "
                       f"{weights.checkpoint_path('vgg16')} could not be provisioned ({e})") from e


def load_vgg_features(net: str, path: Path, depth: int) -> nn.Sequential:
    """torchvision `net(weights=None).features[:depth]` with the checkpoint's weights, frozen.

    Built on the meta device and filled with `assign=True`, so the 100M+ random classifier
    weights are never initialised only to be thrown away.
    """
    with torch.device("meta"):
        features = _VGG[net][0](weights=None).features[:depth]
    state = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "features."
    mine = {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix) and int(k[len(prefix):].split(".")[0]) < depth}
    features.load_state_dict(mine, strict=True, assign=True)
    return features.requires_grad_(False).eval()


class PerceptualLoss(nn.Module):
    """Eq. 9: sum_j 1/(C_j H_j W_j) ||phi_j(out) - phi_j(gt)||_2^2, averaged over the batch.

    That is the sum over layers of the feature-map MSE. Inputs are RGB in [0, 1], (N, 3, H, W);
    they are ImageNet-normalised here. The ground truth is a constant target (its features are
    computed without autograd).

    `net` is the config's `perceptual_net` and is what is used, or a VQEError naming `key` (the config
    key, for the message) and the missing checkpoint: "vgg19" (the paper: relu3_4, relu4_4) needs
    torchvision's checkpoint in the hub cache; "vgg16" (relu3_3, relu4_3) is provisioned offline.
    `net` and `layers` record what was used (never a substitute). The VGG lives
    in a plain list attribute, invisible to nn.Module: it is not in `state_dict()` or `parameters()`
    of this loss or of any model owning it (checkpoints stay small and loadable without it); `_apply`
    moves it with the module and keeps it float32.
    """

    def __init__(self, net: str, key: str = PERCEPTUAL_KEY) -> None:
        super().__init__()
        if net not in _VGG:
            raise VQEError(f"perceptual loss: unknown net {net!r}; known: {sorted(_VGG)}")
        path = _vgg19_checked(key) if net.startswith("vgg19") else _vgg16_path(key)
        self.net = net
        self.layers = tuple(_VGG[net][1])
        self._indices = tuple(_VGG[net][1].values())
        self._vgg = [load_vgg_features(net, path, max(self._indices) + 1)]
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def vgg(self) -> nn.Sequential:
        """The frozen VGG features slice (not a registered submodule)."""
        return self._vgg[0]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> PerceptualLoss:
        """Move/cast the hidden VGG along with the module (`to`, `cuda`, ...), but keep it float32."""
        super()._apply(fn, recurse)
        self._vgg[0] = self._vgg[0]._apply(fn).float()
        return self

    def train(self, mode: bool = True) -> PerceptualLoss:
        """The VGG stays in eval mode whatever the owner's mode."""
        super().train(mode)
        self.vgg.eval()
        return self

    def features(self, x: Tensor) -> Iterator[Tensor]:
        """phi_j(x) for each recorded layer, in float32; x in [0, 1]."""
        x = (x.float() - self.mean.float()) / self.std.float()
        wanted = set(self._indices)
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in wanted:
                yield x

    def forward(self, out: Tensor, gt: Tensor) -> Tensor:
        with torch.autocast(out.device.type, enabled=False):
            with torch.no_grad():
                targets = list(self.features(gt))
            return sum(F.mse_loss(f, t) for f, t in zip(self.features(out), targets))


class LpipsLoss(nn.Module):
    """Mean LPIPS v0.1 of (out, gt) in [0, 1], differentiable in `out`.

    `backbone` "alex" is exactly the evaluation metric (`vqe.metrics.perceptual`; seed 003's generator
    pre-training). "vgg" is LPIPS on VGG-16: unlike the raw feature MSE of eq. 9 it unit-normalises each
    layer's channels and weighs them by the learned head, and a model trained on it is still scored by
    another network (AlexNet); in our 100-200-iteration Stage B probes it did not lower LPIPS-alex (README).
    The frozen, offline-provisioned model is fetched per device and never part of a checkpoint; float32 even
    under autocast.
    """

    layers = ("conv1", "conv2", "conv3", "conv4", "conv5")

    def __init__(self, backbone: str = "alex") -> None:
        super().__init__()
        if backbone not in ("alex", "vgg"):
            raise VQEError(f"LPIPS loss: unknown backbone {backbone!r}; known: ['alex', 'vgg']")
        self.backbone = backbone
        self.net = f"lpips-{backbone}"

    def forward(self, out: Tensor, gt: Tensor) -> Tensor:
        model = lpips_model(self.backbone, out.device)
        with torch.autocast(out.device.type, enabled=False):
            with torch.no_grad():
                target = features(model, gt.float() * 255)
            return distance(model, features(model, out.float() * 255), target).mean()


def perceptual_loss(net: str, key: str = PERCEPTUAL_KEY) -> nn.Module:
    """The perceptual term named by the config key `key`: "lpips" (AlexNet), "lpips-vgg" or a VGG feature
    MSE ("vgg19" | "vgg16"), exactly that network (a VQEError naming `key` when its weights are missing)."""
    if net == "lpips":
        return LpipsLoss("alex")
    if net == "lpips-vgg":
        return LpipsLoss("vgg")
    return PerceptualLoss(net, key)


# --- temporal ----------------------------------------------------------------------------------

def ping_pong_loss(forward: Tensor, backward: Tensor) -> Tensor:
    """Eq. 10: mean squared difference of the forward-time and reversed-time estimates of a frame.

    A generator that treats time symmetrically pays nothing, so drift that accumulates in one
    direction (the ping-pong artefact) is penalised. Mean over all elements.
    """
    if forward.shape != backward.shape:
        raise VQEError(f"ping-pong loss: shapes differ, {tuple(forward.shape)} vs {tuple(backward.shape)}")
    return (forward.float() - backward.float()).square().mean()


def flow_temporal_loss(outputs: Tensor, flows: Tensor) -> Tensor:
    """Flow-warped temporal loss (ablation of ping-pong): mean_t mean((y_t - W(y_{t-1}))^2).

    outputs: generated frames (B, T, 3, H, W); flows: (B, T-1, H, W, 2) backward flows
    b_t = OF(x_t, x_{t-1}) of the *input* frames in pixels (`input_flows`), so the motion the
    output is held to does not depend on the output itself. W is `vqe.metrics.temporal.warp`
    (bilinear, border padding). Every step has the same size, so one mean over all is the mean
    over t of the per-step means. Float32 even under autocast: pixel grids in bf16 are inexact.
    """
    if outputs.ndim != 5 or flows.shape != (*outputs.shape[:1], outputs.shape[1] - 1, *outputs.shape[-2:], 2):
        raise VQEError(f"flow temporal loss: outputs {tuple(outputs.shape)} (B, T, C, H, W) need flows "
                       f"(B, T-1, H, W, 2), got {tuple(flows.shape)}")
    with torch.autocast(outputs.device.type, enabled=False):
        y = outputs.float()
        prev, cur = y[:, :-1].flatten(0, 1), y[:, 1:].flatten(0, 1)
        return (cur - warp(prev, flows.flatten(0, 1).float())).square().mean()


def input_flows(frames: Tensor) -> Tensor:
    """Backward Farneback flows (B, T-1, H, W, 2), float32, of frames (B, T, 3, H, W) in [0, 1].

    Computed on CPU with `vqe.metrics.temporal.flows(..., backward=True)` (the metric's flow, on
    uint8 RGB) and returned on the frames' device, ready for `flow_temporal_loss`.
    """
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise VQEError(f"input flows: expected frames (B, T, 3, H, W), got {tuple(frames.shape)}")
    clips = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    clips = clips.permute(0, 1, 3, 4, 2).cpu().numpy()
    out = np.stack([_flows(np.ascontiguousarray(c), backward=True) for c in clips])
    return torch.from_numpy(out.astype(np.float32, copy=False)).to(frames.device)
