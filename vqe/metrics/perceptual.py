"""LPIPS (Zhang et al. 2018), the learned perceptual distance, via the reference `lpips` package.

We use LPIPS v0.1 with the AlexNet backbone by default, the variant papers report. The backbone's
ImageNet weights are provisioned offline by `vqe.util.weights` beforehand (torchvision would try to
download them otherwise); a model is never built on random weights.

The backbone pass dominates the cost, so LPIPS is split into `features` (one backbone pass per
frame) and `distance` (the cheap learned head, exactly `lpips.LPIPS.forward` for v0.1 without
spatial output): scoring a clip against the ground truth and its own consecutive frames (tLP)
then needs one pass per output frame instead of four, and the ground truth's pass is made once for every
output scored against it (`clip_features`, kept by `vqe.metrics.Reference`).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Iterable, Iterator, Sequence

import lpips
import numpy as np
import torch

from vqe.metrics.fidelity import (
    batches,
    check_frames,
    check_pair,
    resolve_device,
    to_numpy,
    to_tensor,
)
from vqe.util.errors import VQEError
from vqe.util.weights import provision_weights

Features = list[torch.Tensor]
_END = object()  # `lpips_from_features`: one side ran out of batches


@functools.lru_cache(maxsize=None)
def _cached_model(net: str, device: torch.device) -> lpips.LPIPS:
    provision_weights((net,))  # raises VQEError naming the checkpoint if it cannot be had
    # Built outside inference mode even when first asked for inside it (`lpips_clip`): the cached model is
    # shared with the LPIPS loss (`vqe.losses.LpipsLoss`), and inference tensors cannot take part in backward.
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")  # lpips 0.1.4's `pretrained`
        return lpips.LPIPS(net=net, verbose=False).to(device).eval().requires_grad_(False)


def lpips_model(net: str = "alex", device: torch.device | str | None = None) -> lpips.LPIPS:
    """The LPIPS model for backbone `net` ("alex" or "vgg") on `device`, built once per process."""
    return _cached_model(net, resolve_device(device))


def _device(model: lpips.LPIPS) -> torch.device:
    return next(model.parameters()).device


def features(model: lpips.LPIPS, x: torch.Tensor) -> Features:
    """Unit-normalised backbone activations of float (N, 3, H, W) frames on the 0..255 scale."""
    return [lpips.normalize_tensor(f) for f in model.net(model.scaling_layer(x / 127.5 - 1.0))]


def distance(model: lpips.LPIPS, fa: Features, fb: Features) -> torch.Tensor:
    """LPIPS (N,) between two feature lists: learned channel weights, spatial mean, sum over layers."""
    layers = (lpips.spatial_average(lin((a - b) ** 2), keepdim=True) for lin, a, b in zip(model.lins, fa, fb))
    return sum(layers).reshape(-1)


@torch.inference_mode()
def clip_features(frames: np.ndarray, model: lpips.LPIPS, batch_size: int = 8) -> Iterator[Features]:
    """Backbone features of a clip, one `Features` per batch of `batch_size` frames, computed as they are read."""
    device = _device(model)
    for s in batches(len(frames), batch_size):
        yield features(model, to_tensor(frames[s], device))


@torch.inference_mode()
def lpips_from_features(out: Iterable[Features], gt: Iterable[Features] | None,
                        model: lpips.LPIPS) -> tuple[np.ndarray, np.ndarray]:
    """(LPIPS(out_t, gt_t) for each t, LPIPS(out_t, out_{t-1}) for t >= 1) from batched backbone features.

    `gt` must be batched as `out` is (the same batch size); None computes only the consecutive distances.
    """
    to_gt, steps, last = [], [], None
    pairs = itertools.zip_longest(out, gt, fillvalue=_END) if gt is not None else zip(out, itertools.repeat(None))
    for fo, fg in pairs:
        if fg is not None:
            if fo is _END or fg is _END or len(fg[0]) != len(fo[0]):
                raise VQEError("LPIPS: the ground truth's features are not batched as the output's frames "
                               "(`clip_features` of the ground truth with the same batch size)")
            to_gt.append(distance(model, fo, fg))
        if last is None:  # the first frame has no predecessor
            cur, prev = [f[1:] for f in fo], [f[:-1] for f in fo]
        else:
            cur, prev = fo, [torch.cat((l, f[:-1])) for l, f in zip(last, fo)]
        if len(cur[0]):
            steps.append(distance(model, cur, prev))
        last = [f[-1:] for f in fo]
    return to_numpy(to_gt), to_numpy(steps)


def lpips_clip(out: np.ndarray, gt: np.ndarray | None, model: lpips.LPIPS | None = None,
               batch_size: int = 8, gt_features: Sequence[Features] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(LPIPS(out_t, gt_t) for each t, LPIPS(out_t, out_{t-1}) for t >= 1), one backbone pass per frame.

    With `gt=None` only the consecutive distances are computed (the first array is empty). `gt_features`
    (`clip_features(gt, model, batch_size)`, kept by `vqe.metrics.Reference`) spares the ground truth's pass
    when several outputs are scored against the same clip.
    """
    check_frames(out) if gt is None else check_pair(out, gt)
    model = model if model is not None else lpips_model()
    if gt is not None and gt_features is None:
        gt_features = clip_features(gt, model, batch_size)
    return lpips_from_features(clip_features(out, model, batch_size), gt_features, model)


def tlp_from_steps(out_steps: np.ndarray, gt_steps: np.ndarray) -> float:
    """tLP from LPIPS(x_t, x_{t-1}) and LPIPS(g_t, g_{t-1}) (see `perceptual.lpips_clip`)."""
    return float(np.mean(np.abs(out_steps - gt_steps))) if len(gt_steps) else float("nan")
