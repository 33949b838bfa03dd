"""The fast restorer: shapes on odd sizes, bicubic identity at init, training moves it, save/load, and
ImageNet encoder loading from the hub cache only (never a download)."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import profile_params

from vqe.config import FastModel, params_from_dict
from vqe.models.build import load_model, save_model
from vqe.models.fast import FastRestorer, checkpoint_name
from vqe.util.errors import VQEError
from vqe.util.upscale import bicubic_up


def fast_model(**kw) -> FastModel:
    """The paper profile's fast restorer (MobileNetV3-Small, 32 channels, ImageNet encoder) with `kw` changed."""
    return replace(profile_params("paper").nogan_fast.model, **kw)


def bicubic(frame: torch.Tensor, scale: int) -> torch.Tensor:
    """The repository's bicubic (vqe.util.upscale, itself checked against torch's in tests/test_upscale.py)."""
    return bicubic_up(frame, scale)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; the checkpoint, when a test writes one, goes in its checkpoints/."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    return tmp_path / "checkpoints"


def fake_checkpoint(hub, value: float = 0.5):
    """torchvision's state_dict layout, with a known constant in the first and the deepest kept conv."""
    state = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    state["features.0.0.weight"].fill_(value)
    state["features.11.block.3.0.weight"].fill_(-value)
    torch.save(state, hub / checkpoint_name("small"))
    return state


@pytest.mark.parametrize("scale,b,h,w", [
    (1, 2, 33, 47), (2, 2, 33, 47), (4, 1, 17, 23), (3, 1, 20, 24),
    (2, 1, 32, 32),  # train mode, batch 1: the stride-32 map must still hold > 1 value for BatchNorm
])
def test_shapes_on_odd_sizes(scale, b, h, w):
    torch.manual_seed(0)
    model = FastRestorer(**asdict(fast_model()), scale=scale)
    out = model(torch.rand(b, 1, 3, h, w))
    assert out.shape == (b, 3, h * scale, w * scale)
    assert (model.arch, model.n, model.scale) == ("fast", 0, scale)


def test_video_frame_size_in_inference():
    model = FastRestorer(**asdict(fast_model()), scale=1).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 1, 3, 180, 320)).shape == (1, 3, 180, 320)


def test_skips_are_the_last_block_at_each_stride():
    model = FastRestorer(**asdict(fast_model())).eval()
    x = torch.rand(1, 3, 64, 64)
    sizes = []
    with torch.no_grad():
        for block in model.encoder:
            x = block(x)
            sizes.append(x.shape[-1])
    assert [64 // sizes[i] for i in model.taps] == [2, 4, 8, 16, 32]
    for i in model.taps:  # the next block (if any) is coarser: tap i is the last one at its stride
        assert i == len(sizes) - 1 or sizes[i + 1] < sizes[i]
    assert len(model.encoder) == len(torchvision.models.mobilenet_v3_small(weights=None).features) - 1


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_untrained_model_returns_its_bicubic_base_exactly(scale):
    torch.manual_seed(0)
    x = torch.rand(2, 1, 3, 21, 35)
    for model in (FastRestorer(**asdict(fast_model()), scale=scale), FastRestorer(**asdict(fast_model()), scale=scale).eval()):
        assert torch.equal(model(x), bicubic(x[:, 0], scale))


def test_a_few_sgd_steps_change_the_output_and_lower_the_loss():
    torch.manual_seed(0)
    model = FastRestorer(**asdict(fast_model(channels=8)), scale=2)
    x, target = torch.rand(2, 1, 3, 32, 32), torch.rand(2, 3, 64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(4):
        loss = F.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = F.mse_loss(model(x), target).item()
        assert not torch.allclose(model(x), bicubic(x[:, 0], 2))
    assert final < losses[0] and losses[-1] < losses[0]
    assert model.encoder[0][0].weight.grad.abs().sum() > 0  # the encoder learns too, not only the head


@pytest.mark.parametrize("shape", [(1, 3, 3, 16, 16), (1, 3, 16, 16), (1, 1, 1, 16, 16), (1, 1, 4, 16, 16)])
def test_wrong_input_shape_is_a_value_error(shape):
    with pytest.raises(ValueError, match=r"\(B, 1, 3, h, w\)"):
        FastRestorer(**asdict(fast_model()))(torch.rand(shape))


def test_save_load_round_trip(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = FastRestorer(**asdict(fast_model(channels=16, encoder_weights="imagenet")), scale=2)
    with torch.no_grad():
        model.conv_last.weight.normal_(0, 0.1)  # a non-trivial residual
    model(torch.rand(2, 1, 3, 32, 32))  # one train-mode pass moves the BatchNorm running stats
    model.eval()
    save_model(tmp_path / "fast.pt", model, meta={"encoder_weights": "scratch"})

    def no_call(self):
        raise AssertionError("load_model must not reload the encoder: the state_dict holds it")

    monkeypatch.setattr(FastRestorer, "load_encoder_weights", no_call)
    loaded = load_model(tmp_path / "fast.pt")
    assert (loaded.arch, loaded.scale, loaded.config) == ("fast", 2, model.config)
    assert loaded.meta == {"encoder_weights": "scratch"}
    x = torch.rand(1, 1, 3, 33, 47)
    with torch.no_grad():  # loaded channels-last on the CPU: the same model up to float rounding
        out = loaded(x)
        torch.testing.assert_close(out, model(x), rtol=0, atol=1e-5)
        assert out.abs().max() > 0.1


def test_constructor_never_touches_the_hub(monkeypatch):
    def boom():
        raise AssertionError("the constructor must not look for (or download) weights")

    monkeypatch.setattr(torch.hub, "get_dir", boom)
    FastRestorer(**asdict(fast_model(encoder_weights="imagenet")))


def test_scratch_loads_nothing(hub):
    fake_checkpoint(hub)
    model = FastRestorer(**asdict(fast_model(encoder_weights="scratch")))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert model.load_encoder_weights() == "scratch"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_imagenet_without_the_file_names_it(hub):
    model = FastRestorer(**asdict(fast_model(encoder_weights="imagenet")))
    with pytest.raises(VQEError, match=str(hub / checkpoint_name("small"))):
        model.load_encoder_weights()


def test_auto_is_not_a_choice(hub):
    """No fallback on whatever the hub cache holds: the params name the initialisation."""
    raw = asdict(profile_params("smoke"))
    raw["nogan_fast"]["model"]["encoder_weights"] = "auto"
    with pytest.raises(VQEError, match="nogan_fast.model.encoder_weights"):
        params_from_dict(raw)
    fake_checkpoint(hub)
    with pytest.raises(VQEError, match="encoder_weights"):
        FastRestorer(**asdict(fast_model(encoder_weights="auto"))).load_encoder_weights()


def test_imagenet_checkpoint_on_disk_is_loaded(hub):
    state = fake_checkpoint(hub)
    model = FastRestorer(**asdict(fast_model(encoder_weights="imagenet")))
    name = checkpoint_name("small")
    assert name == torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    result = model.load_encoder_weights()
    assert name in result and result.startswith("imagenet")
    assert torch.all(model.encoder[0][0].weight == 0.5)
    assert torch.all(model.encoder[11].block[3][0].weight == -0.5)
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, state[f"features.{k}"])
    assert torch.all(model.conv_last.weight == 0)  # the decoder is untouched: still the bicubic identity


def test_foreign_checkpoint_is_a_vqe_error(hub):
    torch.save({"features.0.0.weight": torch.zeros(1)}, hub / checkpoint_name("small"))
    with pytest.raises(VQEError, match="not a MobileNetV3-small checkpoint"):
        FastRestorer(**asdict(fast_model(encoder_weights="imagenet"))).load_encoder_weights()


def test_large_encoder_runs_at_scale_2(hub):
    torch.manual_seed(0)
    model = FastRestorer(**asdict(fast_model(encoder="large", encoder_weights="imagenet")), scale=2)
    x = torch.rand(1, 1, 3, 32, 32)
    out = model(x)
    assert out.shape == (1, 3, 64, 64)
    assert torch.equal(out, bicubic(x[:, 0], 2))
    assert checkpoint_name("large") != checkpoint_name("small")
    with pytest.raises(VQEError, match=checkpoint_name("large")):
        model.load_encoder_weights()


def test_small_model_is_small():
    params = sum(p.numel() for p in FastRestorer(**asdict(fast_model(channels=32)), scale=2).parameters())
    assert params < 2_500_000
