"""Stage B losses: relativistic GAN, VGG perceptual (eq. 9), ping-pong (eq. 10), flow temporal.

Values are checked against hand computations; the perceptual loss against VGG features built
independently (torchvision's `make_layers`) from the same checkpoint file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from scipy.ndimage import gaussian_filter
from torch import nn

from vqe import losses
from vqe.losses import (
    PerceptualLoss,
    flow_temporal_loss,
    input_flows,
    ping_pong_loss,
    relativistic_loss,
)
from vqe.metrics import fidelity
from vqe.util import weights
from vqe.util.errors import VQEError

# --- helpers -----------------------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _d_ra(a: list[float], b: list[float]) -> list[float]:
    """ESRGAN's D_Ra(x_a, x_b) = sigmoid(C(x_a) - mean C(x_b)), element by element."""
    mean_b = sum(b) / len(b)
    return [_sigmoid(x - mean_b) for x in a]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _esrgan_d_loss(real: list[float], fake: list[float]) -> float:
    """L_D^Ra = -E[log D_Ra(x_r, x_f)] - E[log(1 - D_Ra(x_f, x_r))] (ESRGAN eq. 1)."""
    return (-_mean([math.log(d) for d in _d_ra(real, fake)])
            - _mean([math.log(1 - d) for d in _d_ra(fake, real)]))


def _esrgan_g_loss(real: list[float], fake: list[float]) -> float:
    """L_G^Ra = -E[log(1 - D_Ra(x_r, x_f))] - E[log D_Ra(x_f, x_r)] (ESRGAN eq. 2)."""
    return (-_mean([math.log(1 - d) for d in _d_ra(real, fake)])
            - _mean([math.log(d) for d in _d_ra(fake, real)]))


# --- relativistic GAN loss ---------------------------------------------------------------------

def test_relativistic_loss_by_hand():
    # mean(neg) = 0, mean(pos) = 1: terms softplus(-(2-0)), softplus(-(0-0)), softplus(1-1), softplus(-1-1)
    expected = 0.5 * ((math.log(1 + math.exp(-2)) + math.log(2)) / 2
                      + (math.log(2) + math.log(1 + math.exp(-2))) / 2)
    value = relativistic_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, -1.0]))
    assert value.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("real, fake", [([2.0, 0.0], [1.0, -1.0]), ([1.0, 2.0, 4.0], [0.0, 0.0, -3.0])])
def test_relativistic_loss_is_esrgans_for_both_players(real, fake):
    r, f = torch.tensor(real), torch.tensor(fake)
    assert relativistic_loss(r, f).item() == pytest.approx(0.5 * _esrgan_d_loss(real, fake), rel=1e-6)
    # the generator's loss is the discriminator's formula with the roles swapped
    assert relativistic_loss(f, r).item() == pytest.approx(0.5 * _esrgan_g_loss(real, fake), rel=1e-6)
    assert _esrgan_g_loss(real, fake) == pytest.approx(_esrgan_d_loss(fake, real), rel=1e-12)


@pytest.mark.parametrize("c", [-3.0, 0.0, 0.7])
def test_relativistic_loss_is_log2_when_the_critic_cannot_tell(c):
    logits = torch.full((2, 1, 4, 4), c)  # PatchGAN-shaped map
    assert relativistic_loss(logits, logits.clone()).item() == pytest.approx(math.log(2), rel=1e-6)


def test_relativistic_loss_falls_as_real_logits_rise():
    torch.manual_seed(0)
    real = torch.randn(2, 1, 5, 5, requires_grad=True)
    fake = torch.randn(2, 1, 5, 5, requires_grad=True)
    loss = relativistic_loss(real, fake)
    loss.backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    with torch.no_grad():
        assert relativistic_loss(real + 0.5, fake) < loss < relativistic_loss(real, fake + 0.5)


def test_relativistic_loss_returns_float32_for_low_precision_logits():
    pos, neg = torch.tensor([2.0, 0.0]).bfloat16(), torch.tensor([1.0, -1.0]).bfloat16()
    assert relativistic_loss(pos, neg).dtype == torch.float32


# --- perceptual loss ---------------------------------------------------------------------------

_EXPECTED = {"vgg19": (("relu3_4", "relu4_4"), (17, 26), "E"), "vgg16": (("relu3_3", "relu4_3"), (15, 22), "D")}


@pytest.fixture(scope="module")
def perceptual() -> PerceptualLoss:
    """VGG-16, the network the tiny and smoke profiles name (its weights are provisioned offline)."""
    try:
        return PerceptualLoss("vgg16")
    except VQEError as e:
        pytest.skip(f"no VGG-16 ImageNet checkpoint offline: {e}")


def _checkpoint(net: str) -> Path:
    return losses._vgg19_path() if net == "vgg19" else weights.checkpoint_path("vgg16")


def _reference_vgg(net: str, path: Path) -> nn.Sequential:
    """torchvision's VGG layer list up to the deepest layer, filled with the checkpoint's weights."""
    _, ids, cfg = _EXPECTED[net]
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs[cfg])[:max(ids) + 1]
    state = torch.load(path, map_location="cpu", weights_only=True)
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                              if k.startswith("features.") and int(k.split(".")[1]) <= max(ids)})
    return features


def _reference_features(net: str, features: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The paper's layers (by index, independently of the loss's own table), ImageNet-normalised."""
    ids = _EXPECTED[net][1]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h, out = (x - mean) / std, []
    with torch.no_grad():
        for i, layer in enumerate(features):
            h = layer(h)
            if i in ids:
                out.append(h.clone())
    return out


def _hand_perceptual(net: str, path: Path, a: torch.Tensor, b: torch.Tensor) -> float:
    """Eq. 9: sum_j 1/(C_j H_j W_j) ||phi_j(a) - phi_j(b)||^2, averaged over the batch."""
    total, vgg = 0.0, _reference_vgg(net, path)
    for fa, fb in zip(_reference_features(net, vgg, a), _reference_features(net, vgg, b)):
        c, h, w = fa.shape[1:]
        per_image = (fa - fb).double().square().flatten(1).sum(1) / (c * h * w)
        total += per_image.mean().item()
    return total


def test_perceptual_records_the_network_it_uses(perceptual):
    """Exactly the network asked for, whatever the torch hub cache holds: never a substitute."""
    assert (perceptual.net, perceptual.layers) == ("vgg16", _EXPECTED["vgg16"][0])


def test_perceptual_is_zero_for_identical_images(perceptual):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert perceptual(x, x.clone()).item() == 0.0


def test_perceptual_matches_eq9_by_hand(perceptual):
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    expected = _hand_perceptual(perceptual.net, _checkpoint(perceptual.net), a, b)
    assert expected > 0
    assert perceptual(a, b).item() == pytest.approx(expected, rel=1e-4)


def test_perceptual_gradients_reach_the_input_not_the_vgg(perceptual):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 32, 32, generator=g).requires_grad_()
    perceptual(x, torch.rand(1, 3, 32, 32, generator=g)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    vgg_params = list(perceptual.vgg.parameters())
    assert vgg_params and all(not p.requires_grad and p.grad is None for p in vgg_params)


class _Owner(nn.Module):
    """A trainer-like module that owns a generator and the loss."""

    def __init__(self, loss: PerceptualLoss) -> None:
        super().__init__()
        self.gen = nn.Conv2d(3, 3, 3, padding=1)
        self.perceptual = loss


def test_perceptual_vgg_stays_out_of_state_dicts_and_optimisers(perceptual):
    owner = _Owner(perceptual)
    assert perceptual.state_dict() == {} and list(perceptual.parameters()) == []
    assert set(owner.state_dict()) == {"gen.weight", "gen.bias"}
    assert len(list(owner.parameters())) == 2
    owner.load_state_dict(owner.state_dict())  # strict round trip: no VGG keys expected either


def test_perceptual_vgg_stays_frozen_float32_and_eval(perceptual):
    owner = _Owner(perceptual)
    try:
        owner.train().double()
        assert not perceptual.vgg.training and perceptual.training
        assert all(p.dtype == torch.float32 for p in perceptual.vgg.parameters())
        assert owner.gen.weight.dtype == torch.float64
        x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
        assert perceptual(x, x * 0.5).dtype == torch.float32
    finally:
        owner.float().eval()


def test_perceptual_under_bf16_autocast_is_float32(perceptual):
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 32, 32, generator=g).bfloat16(), torch.rand(2, 3, 32, 32, generator=g).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = perceptual(a, b)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(perceptual(a.float(), b.float()).item(), rel=1e-6)


def _hub_dir(monkeypatch, tmp_path: Path) -> Path:
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return ckpt


def test_perceptual_without_any_weights_names_the_missing_files(monkeypatch, tmp_path):
    _hub_dir(monkeypatch, tmp_path)

    def offline(*args, **kwargs):
        raise VQEError("no network")

    monkeypatch.setattr(weights, "fetch_members", offline)
    with pytest.raises(VQEError, match="vgg16-397923af.pth") as info:
        PerceptualLoss("vgg16", key="stage_b.loss.perceptual_net")
    assert "stage_b.loss.perceptual_net" in str(info.value)
    with pytest.raises(VQEError, match="vgg19-dcbb9e9d.pth"):
        PerceptualLoss("vgg19")


def test_vgg19_without_its_checkpoint_is_an_error_not_vgg16(monkeypatch, tmp_path):
    """With VGG-16 available and VGG-19 not, asking for VGG-19 fails naming the key and the file."""
    source = weights.checkpoint_path("vgg16")
    if not source.exists():
        pytest.skip(f"{source} not provisioned")
    hub = _hub_dir(monkeypatch, tmp_path)
    (hub / source.name).symlink_to(source)
    with pytest.raises(VQEError, match=r"nogan.loss.perceptual_net is vgg19.*vgg19-dcbb9e9d.pth") as info:
        losses.perceptual_loss("vgg19", key="nogan.loss.perceptual_net")
    assert str(hub / losses.VGG19_CHECKPOINT) in str(info.value)
    with pytest.raises(VQEError, match="stage_b.loss.perceptual_net"):  # the default names both keys
        losses.perceptual_loss("vgg19")


def test_perceptual_uses_vgg19_when_its_checkpoint_exists(monkeypatch, tmp_path):
    """A stand-in VGG-19 checkpoint (random, through conv4_4) must select the paper's layers."""
    torch.manual_seed(4)
    fake = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])[:26]
    path = _hub_dir(monkeypatch, tmp_path) / losses.VGG19_CHECKPOINT
    torch.save({f"features.{k}": v for k, v in fake.state_dict().items()}, path)
    loss = PerceptualLoss("vgg19")
    assert (loss.net, loss.layers) == ("vgg19", ("relu3_4", "relu4_4"))
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    assert loss(a, b).item() == pytest.approx(_hand_perceptual("vgg19", path, a, b), rel=1e-4)


def test_unknown_perceptual_net_is_rejected():
    with pytest.raises(VQEError, match="unknown net"):
        PerceptualLoss("resnet50")


# --- ping-pong ---------------------------------------------------------------------------------

def test_ping_pong_by_hand():
    forward = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    backward = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    assert ping_pong_loss(forward, backward).item() == pytest.approx((2 ** 2 + 3 ** 2) / 4)


def _ping_pong_passes(generator, seq: torch.Tensor, window: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimates of the same frames from the forward pass and from the time-reversed pass."""
    n = seq.shape[1]
    fwd = torch.stack([generator(seq[:, i:i + window]) for i in range(n - window + 1)], 1)
    rev = seq.flip(1)
    bwd = torch.stack([generator(rev[:, i:i + window]) for i in range(n - window + 1)], 1).flip(1)
    return fwd, bwd


def _sequence() -> torch.Tensor:
    # multiples of 1/256: sums of five frames are exact in float32, so a symmetric mean is too
    return torch.randint(0, 256, (2, 8, 3, 6, 6), generator=torch.Generator().manual_seed(6)) / 256.0


def test_ping_pong_is_zero_for_a_time_symmetric_generator():
    fwd, bwd = _ping_pong_passes(lambda w: w.mean(1), _sequence())
    assert fwd.shape == (2, 4, 3, 6, 6)
    assert ping_pong_loss(fwd, bwd).item() == 0.0


def test_ping_pong_penalises_a_time_asymmetric_generator():
    # G(x_i..x_i+4) = sum_k (k+1)/15 x_{i+k}. Reversing time reverses the weights, so by hand
    # fwd_i - bwd_i = sum_k ((k+1) - (5-k))/15 x_{i+k} = (2/15)(-2 x_i - x_{i+1} + x_{i+3} + 2 x_{i+4}).
    weights_ = torch.arange(1.0, 6.0).view(1, 5, 1, 1, 1) / 15.0
    generator = lambda w: (w * weights_).sum(1)  # noqa: E731
    # a static frame plus a ramp of 1/16 per frame: the static part cancels, the ramp leaves
    # (2/15)(-2*0 - 1 + 3 + 2*4)/16 = 1/12 on every element, so the loss is exactly 1/144
    ramp = _sequence()[:, :1] + torch.arange(8.0).view(1, 8, 1, 1, 1) / 16
    fwd, bwd = _ping_pong_passes(generator, ramp)
    assert ping_pong_loss(fwd, bwd).item() == pytest.approx(1 / 144, rel=1e-5)
    # a random sequence: the expected value from the raw frames by the closed form, not from fwd/bwd
    seq = _sequence()
    fwd, bwd = _ping_pong_passes(generator, seq)
    diff = (2 / 15) * (-2 * seq[:, 0:4] - seq[:, 1:5] + seq[:, 3:7] + 2 * seq[:, 4:8]).double()
    expected = diff.square().mean().item()
    assert expected > 1e-3
    assert ping_pong_loss(fwd, bwd).item() == pytest.approx(expected, rel=1e-5)


def test_ping_pong_rejects_mismatched_shapes():
    with pytest.raises(VQEError, match="shapes differ"):
        ping_pong_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


# --- flow temporal loss ------------------------------------------------------------------------

def _moving_patch(t_steps: int = 3, dy: int = 1, dx: int = 2) -> torch.Tensor:
    """(1, T, 3, 32, 32): a textured 12x12 patch moving (dy, dx) px per frame on a flat background."""
    patch = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(7))
    frames = torch.full((1, t_steps, 3, 32, 32), 0.25)
    for t in range(t_steps):
        y, x = 8 + dy * t, 8 + dx * t
        frames[0, t, :, y:y + 12, x:x + 12] = patch
    return frames


def test_flow_temporal_is_zero_for_exactly_compensated_translation():
    frames = _moving_patch()
    # y_t(p) = y_{t-1}(p + b_t(p)) with b_t = (dx, dy) = (-2, -1): the flat border pads exactly
    flows = torch.tensor([-2.0, -1.0]).expand(1, 2, 32, 32, 2)
    assert flow_temporal_loss(frames, flows).item() == pytest.approx(0.0, abs=1e-10)
    assert flow_temporal_loss(frames, torch.zeros_like(flows)).item() > 1e-3  # the motion is real


def test_flow_temporal_with_zero_flow_is_the_plain_frame_difference():
    y = torch.rand(2, 4, 3, 8, 10, generator=torch.Generator().manual_seed(8))
    expected = _mean([F.mse_loss(y[:, t], y[:, t - 1]).item() for t in range(1, 4)])
    assert flow_temporal_loss(y, torch.zeros(2, 3, 8, 10, 2)).item() == pytest.approx(expected, rel=1e-5)


def test_flow_temporal_rejects_mismatched_flows():
    with pytest.raises(VQEError, match="flows"):
        flow_temporal_loss(torch.zeros(1, 3, 3, 8, 8), torch.zeros(1, 3, 8, 8, 2))


def _translated_clips() -> torch.Tensor:
    """(2, 3, 3, 48, 64) textured clips: clip 0 moves 2 px left per frame, clip 1 moves 2 px down."""
    rng = np.random.default_rng(0)
    base = gaussian_filter(rng.integers(0, 256, (72, 88, 3)).astype(np.float32), (2, 2, 0)) * 4 - 384
    base = base.clip(0, 255).round() / 255.0
    left = [base[12:60, 12 + 2 * t:76 + 2 * t] for t in range(3)]   # x_t(y, x) = x_{t-1}(y, x + 2)
    down = [base[12 - 2 * t:60 - 2 * t, 12:76] for t in range(3)]   # x_t(y, x) = x_{t-1}(y - 2, x)
    clips = np.stack([np.stack(left), np.stack(down)])            # (2, T, H, W, 3)
    return torch.from_numpy(clips).float().permute(0, 1, 4, 2, 3).contiguous()


def test_input_flows_recover_a_two_pixel_translation():
    frames = _translated_clips()
    flows = input_flows(frames)
    assert flows.shape == (2, 2, 48, 64, 2) and flows.dtype == torch.float32
    interior = flows[:, :, 8:-8, 8:-8]
    for clip, (dx, dy) in enumerate([(2.0, 0.0), (0.0, -2.0)]):
        median = interior[clip].reshape(-1, 2).median(0).values
        assert median.tolist() == pytest.approx([dx, dy], abs=0.5)
        assert ((interior[clip] - torch.tensor([dx, dy])).abs() < 0.5).float().mean() > 0.9
    # the estimated motion compensates the clip far better than no motion at all
    assert flow_temporal_loss(frames, flows) < 0.2 * flow_temporal_loss(frames, torch.zeros_like(flows))


def test_ms_ssim_min_side_is_the_smallest_side_pytorch_msssim_accepts():
    from pytorch_msssim import ms_ssim

    assert losses.MS_SSIM_MIN_SIDE == fidelity.MS_SSIM_MIN_SIDE == 161
    img = torch.rand(1, 3, 161, 170, generator=torch.Generator().manual_seed(9))
    assert ms_ssim(img, img, data_range=1.0).item() == pytest.approx(1.0, abs=1e-5)  # 161 px: five scales
    with pytest.raises(AssertionError, match="larger than 160"):  # the library's own bound, one pixel less
        ms_ssim(img[..., :160, :], img[..., :160, :], data_range=1.0)
    assert losses.ssim_kind(161, 170) == "ms-ssim"
    assert losses.ssim_kind(160, 400) == losses.ssim_kind(400, 160) == "ssim"
    frames = (img.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    assert fidelity.ms_ssim(frames, frames, "cpu")[0] == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(fidelity.ms_ssim(frames[:, :160], frames[:, :160], "cpu")).all()
