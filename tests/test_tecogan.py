"""TecoGAN baseline: shapes, the truncated recurrence, warping, ping-pong, the discriminator input, the losses."""

from __future__ import annotations

import math

import pytest
import torch

from vqe.models.build import build_model, load_model, save_model
from vqe.models.tecogan import (
    MAX_FLOW,
    SpatioTemporalDiscriminator,
    TecoGAN,
    discriminator_loss,
    feature_loss,
    generator_adv_loss,
    ping_pong_d_inputs,
    ping_pong_loss,
    ping_pong_sequence,
    ping_pong_triplet_indices,
    triplets,
    upscale_flow,
    warp,
    warping_loss,
)
from vqe.util.upscale import bicubic_up

TINY = {"channels": 8, "blocks": 1, "flow_channels": 4}


def tiny(n: int = 2, trained: bool = True) -> TecoGAN:
    """A tiny model; `trained` randomises the zero-initialised last conv so the recurrence shows in the output."""
    torch.manual_seed(0)
    model = TecoGAN(2, n=n, **TINY).eval()
    if trained:
        torch.nn.init.normal_(model.last.weight, std=0.05)
    return model


def frames(t: int, h: int, w: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n,h,w", [(1, 12, 16), (2, 13, 7), (2, 9, 11), (0, 5, 6)])
def test_forward_shapes(n, h, w):
    with torch.no_grad():
        assert tiny(n)(frames(2 * n + 1, h, w)).shape == (2, 3, 2 * h, 2 * w)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="5, 3, h, w"):
        tiny(2)(frames(3, 8, 8))
    with pytest.raises(ValueError, match="power-of-two"):
        TecoGAN(3, **TINY)


@pytest.mark.parametrize("n", [1, 2])
def test_untrained_model_is_exactly_bicubic(n):
    x = frames(2 * n + 1, 12, 10)
    with torch.no_grad():
        assert torch.equal(tiny(n, trained=False)(x), bicubic_up(x[:, n], 2))


def test_forward_is_the_recurrence_truncated_to_t_minus_n_to_t():
    model = tiny(2)
    x = frames(5, 12, 16)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y, model.forward_sequence(x[:, :3])[0][:, -1])
        out = model.first(x[:, 0])  # zeros as the previous output of frame t-n
        for i in (1, 2):
            out, _ = model.step(x[:, i], x[:, i - 1], out)
        torch.testing.assert_close(y, out)
        later = x.clone()
        later[:, 3:] = frames(2, 12, 16, seed=7)
        assert torch.equal(model(later), y)  # causal: frames after t unused
        earlier = x.clone()
        earlier[:, 0] = frames(1, 12, 16, seed=8)[:, 0]
        assert not torch.allclose(model(earlier), y)  # frame t-n reaches frame t through the recurrence


def test_forward_sequence_shapes_and_flow_bound():
    model = tiny(1)
    with torch.no_grad():
        outs, flows = model.forward_sequence(frames(4, 11, 9))
        assert outs.shape == (2, 4, 3, 22, 18) and flows.shape == (2, 3, 2, 11, 9)
        assert flows.abs().max() <= MAX_FLOW
        outs, flows = model.forward_sequence(frames(1, 6, 5))
        assert outs.shape == (2, 1, 3, 12, 10) and flows.shape == (2, 0, 2, 6, 5)


def test_flow_gets_gradient_from_the_output():
    model = tiny(1).train()
    model(frames(3, 8, 8)).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fnet.parameters())


def test_warp_zero_flow_is_identity_and_integer_flow_shifts():
    img = torch.rand(2, 3, 5, 7)
    flow = torch.zeros(2, 2, 5, 7)
    torch.testing.assert_close(warp(img, flow), img, rtol=0, atol=1e-6)
    flow[:, 0] = 1  # x + 1: a shift left by one, the last column replicated
    y = warp(img, flow)
    torch.testing.assert_close(y[..., :-1], img[..., 1:], rtol=0, atol=1e-6)
    torch.testing.assert_close(y[..., -1], img[..., -1], rtol=0, atol=1e-6)
    flow = torch.zeros(2, 2, 5, 7)
    flow[:, 1] = -2  # y - 2: a shift down by two, the first row replicated
    y = warp(img, flow)
    torch.testing.assert_close(y[..., 2:, :], img[..., :-2, :], rtol=0, atol=1e-6)
    torch.testing.assert_close(y[..., :2, :], img[..., :1, :].expand(2, 3, 2, 7), rtol=0, atol=1e-6)


def test_upscale_flow_scales_the_displacement():
    flow = torch.full((1, 2, 3, 4), 1.5)
    torch.testing.assert_close(upscale_flow(flow, 2), torch.full((1, 2, 6, 8), 3.0))


def test_ping_pong_sequence_layout():
    seq = torch.arange(3.0).view(1, 3, 1, 1, 1)
    assert ping_pong_sequence(seq).flatten().tolist() == [0, 1, 2, 1, 0]


def test_ping_pong_loss_by_hand():
    outputs = torch.tensor([1.0, 2, 3, 5, 7]).view(1, 5, 1, 1, 1).expand(1, 5, 3, 2, 2)
    # forward frames 1, 2 -> 1, 2; backward frames 1, 2 (positions 5, 4) -> 7, 5: (36 + 9) / 2
    assert ping_pong_loss(outputs, 3).item() == pytest.approx(22.5)
    with pytest.raises(ValueError):
        ping_pong_loss(outputs, 2)


@pytest.mark.parametrize("T", [2, 3, 4, 5, 6])
def test_ping_pong_triplet_flows_warp_onto_the_middle_frame(T):
    def orig(p: int) -> int:  # position in the ping-pong sequence -> frame
        return p if p < T else 2 * T - 2 - p

    idx = ping_pong_triplet_indices(T)
    assert len(idx) == (2 * T - 1) // 3
    for s, f, b in idx:
        assert 0 <= f < 2 * T - 2 and 0 <= b < 2 * T - 2
        assert (orig(f), orig(f + 1)) == (orig(s), orig(s + 1))  # flow f warps frame orig(f) onto orig(f + 1)
        assert (orig(b), orig(b + 1)) == (orig(s + 2), orig(s + 1))
    assert ping_pong_triplet_indices(4) == [(0, 0, 4), (3, 3, 1)]


def test_triplets_layout():
    hr = torch.rand(2, 3, 3, 8, 10)
    lr = torch.rand(2, 3, 3, 4, 5)
    flows = torch.zeros(2, 2, 2, 8, 10)
    flows[:, 0, 0] = 1
    x = triplets(hr, flows, lr)
    assert x.shape == (2, 27, 8, 10)
    assert torch.equal(x[:, :9], hr.flatten(1, 2))
    torch.testing.assert_close(x[:, 9:12], warp(hr[:, 0], flows[:, 0]))
    assert torch.equal(x[:, 12:15], hr[:, 1])
    torch.testing.assert_close(x[:, 15:18], hr[:, 2], rtol=0, atol=1e-6)
    torch.testing.assert_close(x[:, 18:], bicubic_up(lr.flatten(0, 1), 2).unflatten(0, (2, 3)).flatten(1, 2))
    with pytest.raises(ValueError):
        triplets(hr[:, :2], flows, lr)


@pytest.mark.parametrize("T,k", [(3, 1), (4, 2)])
def test_ping_pong_d_inputs(T, k):
    lr = ping_pong_sequence(frames(T, 4, 5))
    hr = ping_pong_sequence(frames(T, 8, 10, seed=2))
    x = ping_pong_d_inputs(hr, lr, torch.zeros(2, 2 * T - 2, 2, 4, 5))
    assert x.shape == (2 * k, 27, 8, 10)
    assert torch.equal(x[::k, :9], hr[:, :3].flatten(1, 2))  # clip-major: triplet 0 of each clip is frames 0..2
    torch.testing.assert_close(x[:, 9:18], x[:, :9], rtol=0, atol=1e-6)
    flows = torch.zeros(2, 2 * T - 2, 2, 4, 5)
    flows[:, :, 0] = torch.arange(1.0, 2 * T - 1).view(1, -1, 1, 1) / 4  # flow i shifts by (i + 1) / 4 LR pixels
    x = ping_pong_d_inputs(hr, lr, flows)
    for j, (s, f, b) in enumerate(ping_pong_triplet_indices(T)):
        torch.testing.assert_close(x[j::k, 9:12], warp(hr[:, s], upscale_flow(flows[:, f], 2)))
        torch.testing.assert_close(x[j::k, 15:18], warp(hr[:, s + 2], upscale_flow(flows[:, b], 2)))


def test_discriminator_shapes():
    disc = SpatioTemporalDiscriminator(channels=4, levels=3)
    logits, feats = disc(torch.rand(2, 27, 32, 24))
    assert logits.shape == (2, 1, 4, 3)
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 16, 12), (4, 8, 6), (8, 4, 3)]
    assert [b[0].out_channels for b in SpatioTemporalDiscriminator().blocks] == [64, 64, 128, 256]
    with pytest.raises(ValueError, match="27"):
        disc(torch.rand(2, 9, 32, 24))


def test_gan_losses_by_hand():
    real, fake = torch.tensor([math.log(3.0)]), torch.tensor([-math.log(3.0)])  # D(real) = 0.75, D(fake) = 0.25
    assert discriminator_loss(real, fake).item() == pytest.approx(-2 * math.log(0.75))
    assert discriminator_loss(torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)).item() == pytest.approx(
        2 * math.log(2))
    assert generator_adv_loss(real).item() == pytest.approx(-math.log(0.75))
    assert torch.isfinite(generator_adv_loss(torch.tensor([-200.0])))


def test_feature_loss_by_hand():
    real = [torch.zeros(1, 2, 1, 2), torch.zeros(1, 1, 1, 1)]
    fake = [torch.ones(1, 2, 1, 2), torch.full((1, 1, 1, 1), 3.0)]
    want = 0.02 * 2 / 12 + 0.02 * 3 / 14
    assert feature_loss(real, fake, norms=(12.0, 14.0)).item() == pytest.approx(want)
    with pytest.raises(ValueError):
        feature_loss(real, fake)


def test_warping_loss_by_hand():
    prev = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 3, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1  # warped[x] = prev[x + 1] = x + 1, but the last column stays 4
    cur = prev + 1  # matches all but the last column, off by 1 there: MSE = 1 / 5
    assert warping_loss(cur, prev, flow).item() == pytest.approx(0.2, abs=1e-6)
    seq = torch.stack((cur, cur), 1), torch.stack((prev, prev), 1), torch.stack((flow, flow), 1)
    assert warping_loss(*seq).item() == pytest.approx(0.2, abs=1e-6)


def test_save_load_round_trip(tmp_path):
    model = tiny(1)
    assert TecoGAN(scale=2, **model.config).config == model.config
    assert build_model("tecogan", model.config, 2).config == model.config
    save_model(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")
    assert isinstance(loaded, TecoGAN) and not loaded.training and loaded.config == model.config
    assert loaded.scale == 2 and loaded.n == 1
    assert loaded.last.weight.is_contiguous(memory_format=torch.channels_last)
    x = frames(3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-5)
