"""The fast restorer (seed 003; Mameli et al. 2020, "A NoGAN approach for image and video restoration
and compression artifact removal"): a U-Net decoder on a MobileNetV3 encoder, one frame in.

The paper's restorer is DeOldify's U-Net; seed 003 swaps its ResNet-101 encoder for torchvision's
MobileNetV3 (Small or Large) so that it runs far faster than the multi-frame deformable-conv
generator, at the price of seeing a single frame (no temporal context). It is trained on 64x64
patches. The decoder climbs from the stride-32 features back to stride 1 through the encoder's skips
and the frame itself, then (SR) pixel-shuffles to `scale` times the size. The output is a residual
added to the bicubic up-sampled frame; the last conv starts at zero, so an untrained model returns
exactly its bicubic base, as Stage A does.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vqe.models.parts.blocks import conv_act, upsampler
from vqe.util.errors import VQEError
from vqe.util.upscale import bicubic_up

BACKBONES = {"small": (torchvision.models.mobilenet_v3_small, torchvision.models.MobileNet_V3_Small_Weights),
             "large": (torchvision.models.mobilenet_v3_large, torchvision.models.MobileNet_V3_Large_Weights)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTIPLE = 32  # the encoder's total stride: inputs are padded to a multiple of it
MIN_SIZE = 64  # padded size floor: at 32 pixels the stride-32 map is 1x1 and BatchNorm cannot train on batch 1


def checkpoint_name(encoder: str) -> str:
    """File name torchvision gives the ImageNet checkpoint in the hub cache (taken from its URL)."""
    return BACKBONES[encoder][1].IMAGENET1K_V1.url.rsplit("/", 1)[-1]


def stride_taps(encoder: nn.Sequential, size: int = MIN_SIZE) -> tuple[list[int], list[int]]:
    """(indices, channels) of the last block at each stride 2..32: where the U-Net takes its skips.

    Found by running a dummy input once (BatchNorm in eval so its running statistics are untouched),
    so Small and Large, whose block lists differ, share the code.
    """
    training = encoder.training
    encoder.eval()
    last: dict[int, tuple[int, int]] = {}
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        for i, block in enumerate(encoder):
            x = block(x)
            last[size // x.shape[-1]] = (i, x.shape[1])
    encoder.train(training)
    strides = sorted(last)
    if strides != [2, 4, 8, 16, 32]:
        raise VQEError(f"MobileNetV3 encoder has strides {strides}, expected 2..32")
    return [last[s][0] for s in strides], [last[s][1] for s in strides]


class UpBlock(nn.Module):
    """One decoder level: x2 up-sampling of the coarser map, concat the skip, two 3x3 convs."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1)  # 1x1 before nearest x2: same result as after, 4x cheaper
        self.fuse = nn.Sequential(conv_act(cout + cskip, cout), conv_act(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="nearest")
        return self.fuse(torch.cat([x, skip], 1))


def width(channels: int, stride: int) -> int:
    """Decoder width at `stride`: `channels` at strides 1 and 2, doubling per level up to 4x."""
    return channels * min(4, max(1, stride // 2))


class FastRestorer(nn.Module):
    """x: (B, 1, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale)."""

    arch = "fast"

    def __init__(self, *, encoder: str, channels: int, encoder_weights: str, scale: int = 1) -> None:
        """The keys are `nogan_fast.model`'s (`vqe.config.FastModel` says what each means)."""
        super().__init__()
        self.config = dict(encoder=encoder, channels=channels, encoder_weights=encoder_weights)
        self.n = 0
        self.scale = scale
        self.encoder_name = encoder
        # Always random init: ImageNet weights come only from disk, via load_encoder_weights (trainer).
        # The final 1x1 conv to 576/960 channels (features[-1]) feeds only the classifier: dropped.
        self.encoder = nn.Sequential(*BACKBONES[encoder][0](weights=None).features[:-1])
        self.taps, skip_channels = stride_taps(self.encoder)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        c = channels
        levels = [(16, skip_channels[3]), (8, skip_channels[2]), (4, skip_channels[1]), (2, skip_channels[0]), (1, 3)]
        blocks, cin = [], skip_channels[4]
        for stride, cskip in levels:
            blocks.append(UpBlock(cin, cskip, width(c, stride)))
            cin = width(c, stride)
        self.decoder = nn.ModuleList(blocks)
        self.upsample = upsampler(c, scale)
        self.conv_last = nn.Conv2d(c, 3, 3, padding=1)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def base(self, frame: torch.Tensor) -> torch.Tensor:
        """The frame up-sampled by `scale` (bicubic): what the residual is added to."""
        return bicubic_up(frame, self.scale)

    def residual(self, frame: torch.Tensor) -> torch.Tensor:
        """Learned correction for a frame whose sides are multiples of 32, at `scale` times its size."""
        z = (frame - self.mean) / self.std
        skips, feat = [z], z
        for i, block in enumerate(self.encoder):
            feat = block(feat)
            if i in self.taps:
                skips.append(feat)
        feat = skips.pop()
        for up, skip in zip(self.decoder, reversed(skips)):
            feat = up(feat, skip)
        return self.conv_last(self.upsample(feat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 1 or x.shape[2] != 3:
            raise ValueError(f"the fast restorer expects one RGB frame, shape (B, 1, 3, h, w); got {tuple(x.shape)}")
        frame = x[:, 0]
        h, w = frame.shape[-2:]
        ph = max(MIN_SIZE, -(-h // MULTIPLE) * MULTIPLE) - h
        pw = max(MIN_SIZE, -(-w // MULTIPLE) * MULTIPLE) - w
        padded = F.pad(frame, (0, pw, 0, ph), mode="replicate") if ph or pw else frame
        return self.base(frame) + self.residual(padded)[..., :h * self.scale, :w * self.scale]

    def load_encoder_weights(self) -> str:
        """Initialise the encoder as `encoder_weights` says, exactly (no fallback); says what was used.

        scratch: the random init, unchanged; imagenet: torchvision's ImageNet checkpoint from the torch hub
        cache (never downloaded), a VQEError naming the key and the file when it is absent. Called once by
        the trainer before training; a saved model already holds its trained encoder.
        """
        mode = self.config["encoder_weights"]
        if mode == "scratch":
            return "scratch"
        if mode != "imagenet":
            raise VQEError(f"parameter nogan_fast.model.encoder_weights: {mode!r} is not imagenet or scratch")
        name = checkpoint_name(self.encoder_name)
        path = Path(torch.hub.get_dir()) / "checkpoints" / name
        if not path.is_file():
            raise VQEError(f"parameter nogan_fast.model.encoder_weights is imagenet, but torchvision's ImageNet "
                           f"MobileNetV3-{self.encoder_name} checkpoint {path} does not exist (it is never "
                           "downloaded: put torchvision's file there, or set encoder_weights to scratch)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            features = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("features.")}
            # the dropped final conv (features[-1]) and the classifier are not ours; the rest must all match
            kept = {k: v for k, v in features.items() if int(k.split(".")[0]) < len(self.encoder)}
            self.encoder.load_state_dict(kept)
        except Exception as e:  # pickle, zip, missing or mis-shaped keys: not the checkpoint we expect
            raise VQEError(f"{path}: not a MobileNetV3-{self.encoder_name} checkpoint "
                           f"({type(e).__name__}: {e})") from None
        return f"imagenet ({name})"
