"""NoGAN (seed 003) on the smoke data: each sub-phase runs and resumes, critic pre-training really
freezes the generator, the hand-off keeps the best checkpoint by validation LPIPS, the adaptive switch,
and the fast MobileNetV3 restorer trained by the same schedule."""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import smoke_params_for

from vqe.data.manifest import Manifest
from vqe.losses import LpipsLoss, perceptual_loss
from vqe.metrics.perceptual import lpips_model
from vqe.models.build import load_model
from vqe.models.stage_b import Generator
from vqe.train import nogan as nogan_module
from vqe.train.core import distributed
from vqe.train.core.session import Session
from vqe.train.gan import critic_accuracy
from vqe.train.nogan import NoGan, plateau, train_nogan, train_nogan_fast
from vqe.util.errors import VQEError

_params = functools.partial(smoke_params_for, group="nogan")


def _train(params, stage_a_path: Path, out: Path, live: bool = False):
    return train_nogan(params, stage_a_path=stage_a_path, model_path=out / "nogan.pt", run_dir=out / "run",
                       live_dir=out / "live" if live else None, summary_path=out / "nogan.json", progress=False)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, smoke_manifest, stage_a_path):
    out = tmp_path_factory.mktemp("nogan")
    params = _params(smoke_manifest)
    return out, _train(params, stage_a_path, out, live=True), params


# --- pieces ----------------------------------------------------------------------------------

def test_critic_accuracy_counts_both_sides():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([0.0, 2.0])  # means: real 2, fake 1
    # real > 1: [T, F] -> 0.5; fake < 2: [T, F] -> 0.5
    assert critic_accuracy(real, fake) == 0.5
    assert critic_accuracy(torch.tensor([5.0, 6.0]), torch.tensor([0.0, 1.0])) == 1.0


def test_plateau_stops_patience_iterations_after_the_last_rise():
    extra: dict = {}
    stop = plateau(extra, patience=3, min_delta=0.01, beta=0.0)  # beta 0: the EMA is the value itself
    accs = [0.5, 0.6, 0.7, 0.705, 0.7, 0.69, 0.71]
    stops = [stop({"acc": a}, it) for it, a in enumerate(accs, 1)]
    # last rise by >= 0.01 at it 3; 0.705 and 0.71 are within min_delta of 0.7
    assert stops == [False, False, False, False, False, True, True]
    assert extra["acc_best_it"] == 3


def test_lpips_loss_is_the_metric_and_has_gradients():
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 32, 32)
    out = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1).requires_grad_(True)
    loss = LpipsLoss()(out, gt)
    with torch.no_grad():  # the reference package's own forward on [-1, 1] inputs
        expected = lpips_model("alex")(out * 2 - 1, gt * 2 - 1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and loss.item() > 0.005
    loss.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert LpipsLoss()(gt, gt).item() == pytest.approx(0.0, abs=1e-7)
    assert list(LpipsLoss().state_dict()) == []  # never part of a checkpoint


def test_lpips_vgg_loss_is_lpips_on_vgg16_not_the_evaluation_metric():
    """`perceptual_net: lpips-vgg` is the reference LPIPS-VGG, a different distance from LPIPS-alex."""
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 32, 32)
    out = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1).requires_grad_(True)
    loss_fn = perceptual_loss("lpips-vgg")
    assert isinstance(loss_fn, LpipsLoss) and loss_fn.net == "lpips-vgg" and perceptual_loss("lpips").net == "lpips-alex"
    loss = loss_fn(out, gt)
    with torch.no_grad():
        expected = lpips_model("vgg")(out * 2 - 1, gt * 2 - 1).mean()
        alex = lpips_model("alex")(out * 2 - 1, gt * 2 - 1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert abs(loss.item() - alex.item()) > 0.01
    loss.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    with pytest.raises(VQEError, match="backbone 'squeeze'"):
        LpipsLoss("squeeze")


# --- the schedule ------------------------------------------------------------------------------

def test_every_sub_phase_runs_and_the_model_is_exported(straight):
    out, summary, params = straight
    t = params.nogan.train
    assert summary["pretrain"]["iterations"] == t.iters
    assert 1 <= summary["critic_1"]["iterations"] <= t.critic_iters
    assert summary["handoff_1"]["iterations"] == t.handoff_iters == 2
    assert summary["adversarial_iterations"] == 2
    assert set(summary["seconds"]) == {"pretrain", "critic_1", "handoff_1"}
    assert all(s > 0 for s in summary["seconds"].values())
    assert summary["perceptual"].startswith("lpips-alex") and summary["discriminators"] == ["spatial", "temporal"]
    model = load_model(out / "nogan.pt")
    assert model.arch == "generator" and model.meta["train"]["val"] == summary["val"]
    for phase in ("pretrain", "critic_1", "handoff_1"):
        assert (out / "live" / phase / "plots" / "metrics").is_dir()
    assert (out / "live" / "handoff_1" / "plots" / "metrics" / "val" / "seconds.tsv").is_file()
    assert (out / "live" / "critic_1" / "plots" / "metrics" / "train" / "acc.tsv").is_file()


def test_stage_a_stays_frozen(straight, stage_a_path):
    out, _, _ = straight
    trained, start = load_model(out / "nogan.pt"), load_model(stage_a_path)
    for k, v in start.state_dict().items():
        assert torch.equal(trained.stage_a.state_dict()[k], v), k


def _schedule(params, manifest, stage_a_path, out: Path, validator=None) -> NoGan:
    run = Session(distributed.setup("cpu"), manifest, "test", params.seed, params.synth.scale, "smoke", None)
    gen = Generator.from_stage_a(load_model(stage_a_path), asdict(params.stage_b.model))
    gen.stage_a.requires_grad_(False)
    groups = [{"params": list(gen.stage_b.parameters()), "lr": params.nogan.train.lr}]
    return NoGan(gen, params.nogan, params, groups, run=run, validator=validator, run_dir=out, live_dir=None,
                 config=("test",), progress=False)


def test_pretraining_with_an_ema_scores_and_keeps_the_averaged_weights(tmp_path, smoke_manifest, stage_a_path,
                                                                        monkeypatch):
    """ema > 0: validation scores the EMA of the raw weights, and the critic and hand-off start from it."""
    params = _params(smoke_manifest, train={"iters": 3, "ema": 0.5, "val_every": 10})
    raws, original = [], nogan_module.gan_step

    def recording(*args, **kwargs):
        inner = original(*args, **kwargs)

        def step(batch, it):
            logs = inner(batch, it)
            raws.append({k: v.detach().clone() for k, v in kwargs["model"].state_dict().items()})
            return logs
        return step

    monkeypatch.setattr(nogan_module, "gan_step", recording)
    validator = ScriptedValidator([0.3])
    schedule = _schedule(params, smoke_manifest, stage_a_path, tmp_path, validator)
    schedule.pretrain()
    assert len(raws) == 3 and len(validator.states) == 1
    expected = {k: 0.25 * raws[0][k] + 0.25 * raws[1][k] + 0.5 * raws[2][k] for k in raws[0]}  # e1 = w1, decay 0.5
    moved = [k for k in expected if not torch.equal(raws[0][k], raws[2][k])]
    assert moved  # Stage B trained ...
    for k, v in schedule.gen.state_dict().items():  # ... and the generator now holds the average, as scored
        assert torch.allclose(v, expected[k], atol=1e-6), k
        assert torch.equal(v, validator.states[0][k]), k
    assert not all(torch.equal(schedule.gen.state_dict()[k], raws[2][k]) for k in moved)


def test_critic_pretraining_freezes_the_generator(tmp_path, smoke_manifest, stage_a_path):
    params = _params(smoke_manifest, train={"critic_iters": 3, "critic_patience": 10})
    schedule = _schedule(params, smoke_manifest, stage_a_path, tmp_path)
    g0 = {k: v.clone() for k, v in schedule.gen.state_dict().items()}
    d0 = {k: v.clone() for k, v in schedule.discs.state_dict().items()}
    seen = []
    original = schedule.objective.discriminator_loss

    def spy(real, fake):
        seen.append((schedule.gen.training, fake.requires_grad, [p.requires_grad for p in schedule.gen.parameters()]))
        return original(real, fake)

    schedule.objective.discriminator_loss = spy
    summary = schedule.critic(1)
    assert summary["iterations"] == 3 and len(seen) == 3
    assert all(not training and not grad and not any(req) for training, grad, req in seen)
    for k, v in schedule.gen.state_dict().items():
        assert torch.equal(v, g0[k]), k
    assert all(p.grad is None for p in schedule.gen.parameters())
    assert any(not torch.equal(v, d0[k]) for k, v in schedule.discs.state_dict().items())
    # afterwards Stage B trains again, Stage A stays frozen
    assert all(p.requires_grad for p in schedule.gen.stage_b.parameters())
    assert not any(p.requires_grad for p in schedule.gen.stage_a.parameters())


def test_critic_pretraining_stops_at_the_plateau_and_stays_stopped(tmp_path, smoke_manifest, stage_a_path):
    params = _params(smoke_manifest, train={"critic_iters": 50, "critic_patience": 2, "critic_min_delta": 1.0})
    schedule = _schedule(params, smoke_manifest, stage_a_path, tmp_path)
    first = schedule.critic(1)  # nothing rises by 1.0: stops `patience` iterations after the first
    assert first["iterations"] == 3 and first["stopped_early"]
    again = _schedule(params, smoke_manifest, stage_a_path, tmp_path).critic(1)
    assert again["iterations"] == 3 and again["resumed_from"] == 3


class ScriptedValidator:
    """Returns the LPIPS values given, in order, and remembers the generator it scored each time."""

    def __init__(self, values):
        self.values, self.states, self.input_scores = list(values), [], {"psnr": 20.0, "lpips": 0.5}

    def __call__(self, model):
        self.states.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"psnr": 20.0, "lpips": self.values.pop(0), "psnr_gain": 0.0}


def test_handoff_keeps_the_generator_with_the_best_validation_lpips(tmp_path, smoke_manifest, stage_a_path):
    params = _params(smoke_manifest, train={"iters": 8, "handoff_fraction": 0.5, "handoff_ckpt_every": 1,
                                            "critic_thresh": 100.0, "handoff_lr": 1e-2})
    validator = ScriptedValidator([0.30, 0.10, 0.20, 0.25])
    schedule = _schedule(params, smoke_manifest, stage_a_path, tmp_path, validator)
    summary = schedule.handoff(1)
    assert summary["iterations"] == 4 and summary["best_it"] == 2 and summary["best_lpips"] == 0.10
    assert summary["g_updates"] == 2  # threshold 100: critic, generator, critic, generator
    chosen, last = validator.states[1], validator.states[3]
    assert any(not torch.equal(chosen[k], last[k]) for k in chosen)  # the generator moved after the best
    for k, v in schedule.gen.state_dict().items():
        assert torch.equal(v, chosen[k]), k


def test_handoff_never_hands_over_while_the_critic_is_above_its_threshold(tmp_path, smoke_manifest, stage_a_path):
    params = _params(smoke_manifest, train={"iters": 6, "handoff_fraction": 0.5, "critic_thresh": 1e-6})
    schedule = _schedule(params, smoke_manifest, stage_a_path, tmp_path)
    g0 = {k: v.clone() for k, v in schedule.gen.state_dict().items()}
    summary = schedule.handoff(1)
    assert summary["iterations"] == 3 and summary["g_updates"] == 0
    assert all(torch.equal(v, g0[k]) for k, v in schedule.gen.state_dict().items())


@pytest.mark.parametrize("factory,phase,kill_at,resumes_at", [
    ("gan_step", "pretrain", 3, 2), ("critic_step", "critic_1", 3, 2),  # smoke: checkpoints every 2 iterations
    ("handoff_step", "handoff_1", 2, 1),  # ... and every iteration in the 2-iteration hand-off
])
def test_a_run_killed_in_any_sub_phase_resumes_to_the_same_model(tmp_path, smoke_manifest, stage_a_path, straight,
                                                                 monkeypatch, factory, phase, kill_at, resumes_at):
    out_ref, _, params = straight
    original = getattr(nogan_module, factory)

    def crashing(*args, **kwargs):
        step = original(*args, **kwargs)

        def wrapped(batch, it):
            if it == kill_at:
                raise RuntimeError("killed")
            return step(batch, it)

        return wrapped

    monkeypatch.setattr(nogan_module, factory, crashing)
    with pytest.raises(RuntimeError, match="killed"):
        _train(params, stage_a_path, tmp_path)
    assert not (tmp_path / "nogan.pt").exists()
    monkeypatch.setattr(nogan_module, factory, original)
    summary = _train(params, stage_a_path, tmp_path)
    order = ["pretrain", "critic_1", "handoff_1"]
    for done in order[:order.index(phase)]:  # finished sub-phases are restored, not re-run
        assert summary[done]["resumed_from"] == summary[done]["iterations"]
    assert summary[phase]["resumed_from"] == resumes_at
    ref, resumed = load_model(out_ref / "nogan.pt"), load_model(tmp_path / "nogan.pt")
    for k, v in ref.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k


def test_cycles_repeat_critic_and_handoff_from_the_chosen_generator(tmp_path, smoke_manifest, stage_a_path):
    params = _params(smoke_manifest, train={"cycles": 2})
    summary = _train(params, stage_a_path, tmp_path)
    assert list(summary["seconds"]) == ["pretrain", "critic_1", "handoff_1", "critic_2", "handoff_2"]
    assert summary["adversarial_iterations"] == 2 * params.nogan.train.handoff_iters
    assert summary["val"] == summary["handoff_2"]["best_val"]


def test_nothing_to_train_is_an_error(tmp_path, smoke_manifest, stage_a_path):
    params = smoke_params_for(smoke_manifest, "stage_b", model={"enabled": False})
    with pytest.raises(VQEError, match="nothing to train"):
        _train(params, stage_a_path, tmp_path)


def test_the_fast_restorer_trains_by_nogan(tmp_path, smoke_manifest):
    params = _params(smoke_manifest, group="nogan_fast")
    summary = train_nogan_fast(params, model_path=tmp_path / "fast.pt", run_dir=tmp_path / "run",
                               live_dir=tmp_path / "live", summary_path=tmp_path / "fast.json", progress=False)
    assert params.nogan_fast.model.encoder_weights == "scratch"  # the smoke profile's choice ...
    assert summary["encoder_weights"] == "scratch"  # ... is what was used, whatever the torch hub cache holds
    assert summary["discriminators"] == ["spatial"] and summary["temporal_loss"] == "none"
    assert summary["adversarial_iterations"] == params.nogan_fast.train.handoff_iters
    model = load_model(tmp_path / "fast.pt")
    assert model.arch == "fast" and model.n == 0 and model.scale == params.synth.scale
    assert summary["val"]["lpips"] == pytest.approx(summary["handoff_1"]["best_lpips"])
    # training leaves the data set as it was, and validated on it: the summary's input row is the PSNR
    # (by scikit-image) of the bicubic decode of the validation clip at the main bitrate, over the
    # `val_frames` consecutive frames from the clip's middle
    import numpy as np
    from skimage.metrics import peak_signal_noise_ratio

    assert Manifest.load(params.synth.out_dir) == smoke_manifest
    (val,) = [e for e in smoke_manifest.select("val") if e.kbps_target == params.eval.main_kbps]
    k = params.nogan_fast.train.val_frames
    start = (val.frames - k) // 2
    gt, lq = smoke_manifest.gt(val.clip), smoke_manifest.lq(val)
    expected = np.mean([peak_signal_noise_ratio(gt[t], lq[t], data_range=255) for t in range(start, start + k)])
    assert 1 < k < val.frames and summary["val_input"]["psnr"] == pytest.approx(expected, abs=1e-4)
