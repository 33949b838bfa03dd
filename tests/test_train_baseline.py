"""The shared baseline trainer: every Table 1 system trains on the smoke data, exports a loadable model, records
what it ran; the objective's terms switch on as configured; a killed run resumes to the same model."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ROOT, profile_params

from vqe.config import BaselineLoss, compose, params_from_dict
from vqe.models.build import load_model
from vqe.models.parts.discriminator import PatchDiscriminator
from vqe.models.parts.objective import View
from vqe.registry import GAMES
from vqe.train.baseline import objective_terms, train_baseline
from vqe.train.gan import adversary, ragan
from vqe.util.errors import VQEError

SYSTEMS = ["supervegan2", "supervegan4", "galteri", "galteri_fast", "galteri_veryfast", "edvr", "mfqe2", "tecogan",
           "esrgan_dncnn"]


def smoke_baselines(manifest, **train):
    data = compose("smoke", ROOT / "conf")
    data["synth"]["out_dir"] = str(manifest.root)
    data["baselines"]["train"].update(train)
    return params_from_dict(data, origin="test")


def test_every_table1_row_is_a_system_of_the_default_profile():
    params = profile_params("tiny")
    assert set(SYSTEMS) <= set(params.baselines.systems)
    assert set(params.baselines.rows) == set(SYSTEMS)
    assert set(SYSTEMS) <= set(params.eval.methods)


@pytest.mark.parametrize("name", SYSTEMS)
def test_every_system_trains_exports_and_records_its_loss(tmp_path, smoke_manifest, name):
    params = smoke_baselines(smoke_manifest, iters=2, val_every=2, ckpt_every=2)
    summary = train_baseline(params, name, model_path=tmp_path / "m.pt", run_dir=tmp_path / "run",
                             live_dir=None, summary_path=tmp_path / "s.json", progress=False)
    assert summary["iterations"] == 2 and summary["row"] == name
    assert math.isfinite(summary["val"]["psnr"]) and summary["seconds"] > 0
    model = load_model(tmp_path / "m.pt")
    assert model.arch == params.baselines.systems[name].arch
    assert model.meta["train"]["loss"]["adversarial"] == params.baselines.systems[name].loss.adversarial
    x = torch.rand(1, 2 * model.n + 1, 3, 12, 16)
    side = (torch.ones(1, 2 * model.n + 1),) if getattr(model, "needs_side", False) else ()
    assert load_model(tmp_path / "m.pt")(x, *side).shape == (1, 3, 24, 32)
    if params.baselines.systems[name].loss.perceptual.startswith("vgg16"):
        assert "VGG-16" in summary["perceptual_net"]


def _loss(**kw) -> BaselineLoss:
    base = dict(pixel="mse", pixel_weight=2.0, warmup_pixel_weight=1.0, perceptual="none", perceptual_weight=0.0,
                adversarial="none", adv_weight=0.0, aux_weight=0.5, warmup_aux_weight=None, pingpong_weight=0.0,
                warp_weight=0.0)
    return BaselineLoss(**{**base, **kw})


def test_objective_terms_are_the_weighted_losses_that_apply():
    out, gt = torch.full((1, 3, 4, 4), 0.5), torch.zeros(1, 3, 4, 4)
    aux = torch.tensor(0.3)
    terms = objective_terms(View(out, aux, True, {}), gt, _loss(), None, None, None)
    assert terms["pixel"].item() == pytest.approx(2.0 * 0.25)
    assert terms["aux"].item() == pytest.approx(0.5 * 0.3)
    # SUPERVEGAN's first phase: the main terms do not apply, only the model's own (Stage A) term
    terms = objective_terms(View(out, aux, False, {}), gt, _loss(), None, None, None)
    assert set(terms) == {"aux"}
    with pytest.raises(VQEError, match="no term"):
        objective_terms(View(out, None, False, {}), gt, _loss(), None, None, None)
    # the warm-up's own pixel weight (Galteri et al. have no pixel term after it)
    terms = objective_terms(View(out, None, True, {}), gt, _loss(pixel_weight=0.0), None, None, None, pixel_weight=1.0)
    assert terms["pixel"].item() == pytest.approx(0.25)


def test_l1_pixel_term_and_a_perceptual_module_are_weighted():
    out, gt = torch.full((1, 3, 4, 4), 0.25), torch.zeros(1, 3, 4, 4)
    perc = lambda a, b: (a - b).abs().sum()  # noqa: E731
    loss = _loss(pixel="l1", pixel_weight=1.0, perceptual="vgg16", perceptual_weight=0.1)
    terms = objective_terms(View(out, None, True, {}), gt, loss, perc, None, None)
    assert terms["pixel"].item() == pytest.approx(0.25)
    assert terms["perceptual"].item() == pytest.approx(0.1 * 0.25 * 48)


def test_temporal_terms_are_weighted_by_their_own_keys():
    out, gt = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    view = View(out, None, True, {}, temporal={"pingpong": torch.tensor(0.2), "warp": torch.tensor(0.4)})
    terms = objective_terms(view, gt, _loss(pingpong_weight=0.5, warp_weight=0.0), None, None, None)
    assert terms["pingpong"].item() == pytest.approx(0.1) and "warp" not in terms


def test_tecogan_view_scores_the_ping_pong_sequence_against_its_ground_truth():
    """T = 3 aligned frames -> 5 outputs x1 x2 x3 x2 x1 against gt1 gt2 gt3 gt2 gt1; the ping-pong term is the
    forward/backward difference (0 for an untrained model: both are bicubic of the same frames)."""
    from vqe.models.tecogan import TecoGAN

    torch.manual_seed(0)
    model = TecoGAN(scale=2, n=1, channels=4, blocks=1, flow_channels=4)
    lq, gt = torch.rand(2, 5, 3, 8, 8), torch.rand(2, 3, 3, 16, 16)
    view = model.training_view(lq, gt, 1, 10, None)
    assert view.out.shape == view.target.shape == (10, 3, 16, 16)
    assert torch.equal(view.target.unflatten(0, (2, 5))[:, 3], gt[:, 1])
    lr_pp, flows = view.cond
    assert torch.equal(lr_pp[:, 0], lq[:, 1]) and torch.equal(lr_pp[:, 4], lq[:, 1]) and flows.shape == (2, 4, 2, 8, 8)
    assert view.temporal["pingpong"].item() == pytest.approx(0.0, abs=1e-12)
    assert view.temporal["warp"].item() > 0


def _game_inputs(game: str):
    """(real, fake, cond) for a game; TecoGAN's are ping-pong sequences of 2 x 5 frames with zero flows."""
    if game != "tecogan":
        return torch.ones(2, 3, 32, 32) * 0.9, torch.rand(2, 3, 32, 32) * 0.1, torch.rand(2, 3, 32, 32)
    cond = (torch.rand(2, 5, 3, 16, 16), torch.zeros(2, 4, 2, 16, 16))
    return torch.ones(10, 3, 32, 32) * 0.9, torch.rand(10, 3, 32, 32) * 0.1, cond


OURS = ("ours_spatial", "ours_temporal")  # our game (`ragan`), on each of its discriminators


def _game(game: str):
    """The game's Adversary at toy sizes: Table 1's by name, ours on a small PatchGAN."""
    if game in OURS:
        kind = game.split("_")[1]
        return ragan(kind, PatchDiscriminator(9 if kind == "temporal" else 3, 8, 2))
    cfg = {"galteri": dict(channels=4, layers=2, sub_patch=8), "supervegan": dict(channels=4),
           "relativistic": dict(channels=4, layers=2), "tecogan": dict(channels=4, layer_weight=1.0)}[game]
    return adversary(game, cfg, 32)


@pytest.mark.parametrize("game", sorted(GAMES) + list(OURS))
def test_each_adversarial_game_scores_real_below_fake_after_discriminator_steps(game):
    """Every game takes one form (`Adversary`). A few discriminator updates on an obvious difference (real = 1,
    fake = 0) lower its loss: the loss functions have the right sign for each game."""
    torch.manual_seed(0)
    adv = _game(game)
    opt = torch.optim.Adam(adv.disc.parameters(), lr=1e-2)
    real, fake, cond = (torch.ones(2, 3, 3, 32, 32) * 0.9, torch.rand(2, 3, 3, 32, 32) * 0.1, None) if game in OURS \
        else _game_inputs(game)
    first = adv.d_loss(adv.disc, real, fake, cond).item()
    for _ in range(20):
        loss = adv.d_loss(adv.disc, real, fake, cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert adv.d_loss(adv.disc, real, fake, cond).item() < first
    assert adv.g_loss(adv.disc, real, fake, cond).item() > adv.g_loss(adv.disc, real, real, cond).item()
    if game in OURS:  # ours logs what its critic saw: by now it tells every real from every fake
        tag = game.split("_")[1][0]
        assert adv.logs[f"loss_d_{tag}"] < first and adv.logs[f"acc_{tag}"] == 1.0


def test_unknown_row_and_bad_overrides_name_the_key(smoke_manifest):
    params = smoke_baselines(smoke_manifest)
    with pytest.raises(VQEError, match="no row 'nope'"):
        train_baseline(params, "nope")
    data = compose("smoke", ROOT / "conf")
    data["baselines"]["systems"]["edvr"]["train"] = {"itres": 3}
    with pytest.raises(VQEError, match=r"baselines.systems.edvr.train.*itres"):
        params_from_dict(data)
    data = compose("smoke", ROOT / "conf")
    data["baselines"]["rows"] = {"edvr": "edvr", "ghost": "galteri"}  # a row with no system
    with pytest.raises(VQEError, match="baselines.rows"):
        params_from_dict(data)
    data["baselines"]["rows"] = {"edvr": "galteri"}  # a row under another architecture than its system's
    with pytest.raises(VQEError, match=r"baselines.rows.*architecture must be its baselines.systems"):
        params_from_dict(data)
    data = compose("smoke", ROOT / "conf")
    data["baselines"]["systems"]["tecogan"]["train"]["frames"] = 1  # a sequence model on single frames
    with pytest.raises(VQEError, match="tecogan.train.frames"):
        params_from_dict(data)
    data = compose("smoke", ROOT / "conf")
    data["baselines"]["systems"]["galteri"]["loss"]["adv_weight"] = 0.0
    with pytest.raises(VQEError, match="adv_weight"):
        params_from_dict(data)
    data = compose("smoke", ROOT / "conf")
    data["baselines"]["systems"]["edvr"]["loss"]["warmup_pixel_weight"] = 0.0  # nothing to warm up on
    data["baselines"]["systems"]["edvr"]["train"] = {"warmup": 1}
    with pytest.raises(VQEError, match="edvr.train.warmup"):
        params_from_dict(data)


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_uninterrupted_model(tmp_path, smoke_manifest, monkeypatch):
    """Stopped during iteration 4 (checkpoint at 3), then resumed: the same weights as 6 iterations in one go
    (the checkpoint carries the discriminator, both Adams, the schedule and the RNG)."""
    import vqe.train.baseline as baseline

    params = smoke_baselines(smoke_manifest, iters=6, ckpt_every=1, val_every=100, warmup=0)
    run = lambda out: train_baseline(params, "galteri_veryfast", model_path=out / "m.pt", run_dir=out / "run",  # noqa: E731
                                     live_dir=None, summary_path=None, progress=False)
    run(tmp_path / "b")
    calls, real = [], baseline.objective_terms

    def interrupt_at_4(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(baseline, "objective_terms", interrupt_at_4)
    with pytest.raises(Interrupted):
        run(tmp_path / "a")
    assert not (tmp_path / "a" / "m.pt").exists()
    monkeypatch.setattr(baseline, "objective_terms", real)
    summary = run(tmp_path / "a")
    assert summary["resumed_from"] == 3 and summary["iterations"] == 6
    a = load_model(tmp_path / "a" / "m.pt").state_dict()
    b = load_model(tmp_path / "b" / "m.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
