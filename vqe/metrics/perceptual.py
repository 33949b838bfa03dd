"""LPIPS (Zhang et al. 2018), the learned perceptual distance, via the reference `lpips` package.

We use LPIPS v0.1 with the AlexNet backbone by default, the variant papers report. The backbone's
ImageNet weights are provisioned offline by `vqe.weights` beforehand (torchvision would try to
download them otherwise); a model is never built on random weights.
"""

from __future__ import annotations

import functools
import warnings

import lpips
import numpy as np
import torch

from vqe.metrics.fidelity import check_pair, map_pairs, resolve_device
from vqe.weights import provision_weights


@functools.lru_cache(maxsize=None)
def _cached_model(net: str, device: torch.device) -> lpips.LPIPS:
    provision_weights((net,))  # raises VQEError naming the checkpoint if it cannot be had
    with warnings.catch_warnings():  # lpips 0.1.4 still passes torchvision's deprecated `pretrained`
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net=net, verbose=False)
    model = model.to(device).eval()
    return model.requires_grad_(False)


def lpips_model(net: str = "alex", device: torch.device | str | None = None) -> lpips.LPIPS:
    """The LPIPS model for backbone `net` ("alex" or "vgg") on `device`, built once per process."""
    return _cached_model(net, resolve_device(device))


def lpips_distance(a: np.ndarray, b: np.ndarray, model: lpips.LPIPS | None = None,
                   batch_size: int = 8) -> np.ndarray:
    """Per-frame LPIPS between two uint8 (T, H, W, 3) clips (0 = identical; lower is better)."""
    check_pair(a, b)
    model = model if model is not None else lpips_model()
    device = next(model.parameters()).device
    return map_pairs(lambda x, y: model(x / 127.5 - 1.0, y / 127.5 - 1.0), a, b, device, batch_size)
