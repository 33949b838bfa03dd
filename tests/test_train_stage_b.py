"""Phase 2 (Stage B with the GAN) on the smoke data: warm-up schedule, what is trained and what is
frozen, resume after a crash, the NaN guard, the ablation switches, and what the run records."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import smoke_params_for

from vqe.config import compose
from vqe.models.build import load_model
from vqe.train import gan as gan_module
from vqe.train.stage_b import adv_weight, train_stage_b
from vqe.util.errors import VQEError

ROOT = Path(__file__).resolve().parents[1]


def test_adv_weight_is_zero_in_the_warmup_then_ramps_linearly():
    assert [adv_weight(it, 2, 4) for it in range(1, 8)] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert [adv_weight(it, 0, 0) for it in (1, 5)] == [1.0, 1.0]
    assert adv_weight(3, 3, 0) == 0.0 and adv_weight(4, 3, 0) == 1.0


_params = functools.partial(smoke_params_for, group="stage_b")


def _train(params, stage_a_path: Path, out: Path, live: bool = False):
    return train_stage_b(params, stage_a_path=stage_a_path, model_path=out / "gan.pt", run_dir=out / "run",
                         live_dir=out / "live" if live else None, summary_path=out / "summary.json", progress=False)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, smoke_manifest, stage_a_path):
    out = tmp_path_factory.mktemp("straight")
    params = _params(smoke_manifest, train={"iters": 4, "warmup": 2, "ramp": 2, "ckpt_every": 1})
    return out, _train(params, stage_a_path, out, live=True), params


def test_phase2_trains_stage_b_only_and_records_what_it_used(straight, stage_a_path):
    out, summary, _ = straight
    gen, stage_a = load_model(out / "gan.pt"), load_model(stage_a_path)
    assert gen.arch == "generator" and gen.stage_b is not None
    for (name, pa), pb in zip(stage_a.state_dict().items(), gen.stage_a.state_dict().values()):
        assert torch.equal(pa, pb), f"frozen Stage A changed: {name}"
    assert gen.stage_b.conv_last.weight.abs().sum() > 0  # the zero-initialised last conv has moved
    assert summary["iterations"] == 4 and summary["discriminators"] == ["spatial", "temporal"]
    assert summary["perceptual"] == "vgg16 relu3_3/relu4_3"  # the network the smoke params name, no other
    assert "perceptual_fallback" not in summary  # the network is named in params, never substituted
    assert {"psnr", "lpips", "tlp"} <= set(summary["val"]) and {"psnr", "lpips", "tlp"} <= set(summary["val_stage_a"])
    assert summary["temporal_loss"] == "pingpong" and summary["stage_a_trained"] is False


def test_discriminators_only_train_after_the_warmup(straight):
    out = straight[0]
    metrics = out / "live" / "plots" / "metrics" / "train"
    loss_d = pd.read_csv(metrics / "loss_d.tsv", sep="\t")
    assert list(loss_d["step"]) == [3, 4]  # warm-up of 2 iterations: no D updates, no adversarial term
    w = pd.read_csv(metrics / "w_adv.tsv", sep="\t")
    assert list(w["w_adv"]) == [0.0, 0.0, 0.5, 1.0]
    for name in ("d_real_s", "d_fake_s", "d_real_t", "d_fake_t"):
        values = pd.read_csv(metrics / f"{name}.tsv", sep="\t")[name]
        assert ((values > 0) & (values < 1)).all()
    for name in ("loss_pix", "loss_perc", "loss_pp"):
        assert len(pd.read_csv(metrics / f"{name}.tsv", sep="\t")) == 4


def test_a_crashed_run_resumes_to_the_uninterrupted_result(straight, stage_a_path, tmp_path, monkeypatch):
    ref_out, _, params = straight
    calls = {"n": 0}
    original = gan_module.GanObjective.generator_losses

    def crash_at_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process dies mid-iteration 3: checkpoint 2 is on disk
        return original(self, *args, **kwargs)

    monkeypatch.setattr(gan_module.GanObjective, "generator_losses", crash_at_third)
    with pytest.raises(KeyboardInterrupt):
        _train(params, stage_a_path, tmp_path)
    assert not (tmp_path / "gan.pt").exists()
    monkeypatch.setattr(gan_module.GanObjective, "generator_losses", original)
    summary = _train(params, stage_a_path, tmp_path)
    assert summary["resumed_from"] == 2 and summary["iterations"] == 4
    a, b = load_model(ref_out / "gan.pt"), load_model(tmp_path / "gan.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name


def test_non_finite_discriminator_loss_stops_and_keeps_the_checkpoint(smoke_manifest, stage_a_path, tmp_path,
                                                                       monkeypatch):
    params = _params(smoke_manifest, train={"iters": 4, "warmup": 2, "ramp": 2, "ckpt_every": 1})
    original = gan_module.relativistic_loss
    monkeypatch.setattr(gan_module, "relativistic_loss", lambda p, n: original(p, n) * float("nan"))
    with pytest.raises(VQEError, match="non-finite loss.*iteration 3"):
        _train(params, stage_a_path, tmp_path)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["iteration"] == 2
    assert not (tmp_path / "gan.pt").exists()


def test_fine_tuning_stage_a_changes_it(smoke_manifest, stage_a_path, tmp_path):
    params = _params(smoke_manifest, train={"iters": 2, "warmup": 0, "ramp": 0, "stage_a_lr": 1e-3})
    summary = _train(params, stage_a_path, tmp_path)
    gen, stage_a = load_model(tmp_path / "gan.pt"), load_model(stage_a_path)
    changed = [not torch.equal(a, b) for a, b in zip(stage_a.state_dict().values(), gen.stage_a.state_dict().values())]
    assert summary["stage_a_trained"] and any(changed)


def test_no_stage_b_with_frozen_stage_a_exports_stage_a_itself(smoke_manifest, stage_a_path, tmp_path):
    params = _params(smoke_manifest, model={"enabled": False})
    summary = _train(params, stage_a_path, tmp_path)
    gen, stage_a = load_model(tmp_path / "gan.pt"), load_model(stage_a_path)
    x = torch.rand(1, 2 * stage_a.n + 1, 3, 16, 24)
    assert summary["iterations"] == 0 and gen.stage_b is None
    assert torch.equal(gen(x), stage_a(x))


@pytest.mark.parametrize("variant", [
    {"disc": {"kinds": ["spatial"]}, "loss": {"temporal": "none"}},
    {"loss": {"temporal": "flow"}},
])
def test_ablation_switches_train(smoke_manifest, stage_a_path, tmp_path, variant):
    params = _params(smoke_manifest, train={"iters": 2, "warmup": 0, "ramp": 0}, **variant)
    summary = _train(params, stage_a_path, tmp_path, live=True)
    assert summary["discriminators"] == params.stage_b.disc.kinds
    assert summary["temporal_loss"] == params.stage_b.loss.temporal
    logged = {p.stem for p in (tmp_path / "live" / "plots" / "metrics" / "train").glob("*.tsv")}
    assert ("loss_pp" in logged) == (params.stage_b.loss.temporal != "none")
    assert ("d_real_t" in logged) == ("temporal" in params.stage_b.disc.kinds)


def test_stage_a_model_is_required(smoke_manifest, tmp_path):
    with pytest.raises(VQEError, match="model file not found"):
        _train(_params(smoke_manifest), tmp_path / "missing.pt", tmp_path)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_phase2_under_torchrun_ddp_gloo(tmp_path, smoke_manifest, stage_a_path):
    """Warm-up (per-sample losses): 2 processes = 1 process on the whole batch. With the GAN on, every
    module still runs one forward per backward, so DDP trains (the relativistic mean is per rank)."""
    def params_file(name: str, **train) -> Path:
        data = compose("smoke", ROOT / "conf")
        data["synth"]["out_dir"] = str(smoke_manifest.root)
        data["stage_b"]["train"].update(batch=4, ckpt_every=1000, val_every=1000, **train)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def cmd(params: Path, out: Path, procs: int) -> list[str]:
        args = ["-m", "vqe.cli", "train", "stage_b", "--params", str(params), "--stage-a", str(stage_a_path),
                "--out-dir", str(out), "--model-out", str(out / "gan.pt"), "--no-progress"]
        if procs == 1:
            return [sys.executable, *args]
        return [str(Path(sys.executable).parent / "torchrun"), "--standalone", f"--nproc_per_node={procs}", *args]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    warm = params_file("warm", iters=2, warmup=2)
    for procs in (1, 2):
        result = subprocess.run(cmd(warm, tmp_path / f"warm{procs}", procs), env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    a, b = load_model(tmp_path / "warm1/gan.pt"), load_model(tmp_path / "warm2/gan.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=2e-5, rtol=1e-4), name
    assert a.stage_b.conv_last.weight.abs().sum() > 0

    gan = params_file("gan", iters=2, warmup=0, ramp=0)
    result = subprocess.run(cmd(gan, tmp_path / "gan", 2), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = yaml.safe_load((tmp_path / "gan/results/train/stage_b.json").read_text())
    assert summary["processes"] == 2 and summary["iterations"] == 2
