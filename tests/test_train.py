"""The shared training loop: deterministic batches, resume (in-process and after SIGKILL), DDP on gloo,
the NaN guard, stale checkpoints, dvclive logs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import profile_params

from vqe.models.build import load_model
from vqe.train.core import checkpoint
from vqe.train.core.distributed import Dist
from vqe.train.core.loop import IterationBatches, Phase, fit, optimise
from vqe.util.errors import VQEError

ROOT = Path(__file__).resolve().parents[1]


# --- batches -----------------------------------------------------------------------------------

def test_batches_are_deterministic_and_resume_mid_run():
    full = list(IterationBatches(10, 4, 0, 7, seed=3))
    assert full == list(IterationBatches(10, 4, 0, 7, seed=3))
    assert list(IterationBatches(10, 4, 5, 7, seed=3)) == full[5:]
    assert full != list(IterationBatches(10, 4, 0, 7, seed=4))


def test_every_epoch_visits_every_item_once_with_fresh_indices():
    flat = [i for b in IterationBatches(10, 5, 0, 4, seed=0) for i in b]  # 2 epochs of 10
    first, second = flat[:10], flat[10:]
    assert sorted(first) == list(range(10))
    assert sorted(i % 10 for i in second) == list(range(10)) and min(second) >= 10


def test_ranks_split_the_global_batch():
    single = list(IterationBatches(12, 4, 0, 5, seed=1))
    ranks = [list(IterationBatches(12, 4, 0, 5, seed=1, rank=r, world=2)) for r in range(2)]
    assert [a + b for a, b in zip(*ranks)] == single
    with pytest.raises(VQEError, match="not divisible"):
        IterationBatches(12, 3, 0, 5, seed=1, world=2)


# --- the loop on a toy problem -----------------------------------------------------------------

class Points(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(3, generator=g)
        return x, x @ torch.tensor([1.0, -2.0, 0.5])


def toy_phase(nan_at: int | None = None) -> Phase:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), 0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 20)

    def step(batch, it):
        x, y = batch
        loss = ((model(x)[:, 0] - y) ** 2).mean()
        if it == nan_at:
            loss = loss * float("nan")
        optimise(loss, opt, list(model.parameters()), grad_clip=1.0)
        sched.step()
        return {"loss": loss.item()}

    return Phase("toy", {"model": model}, {"adam": opt}, {"cos": sched}, step, validate=lambda: {"w0": model.weight[0, 0].item()})


CFG = replace(profile_params().stage_a.train, iters=12, batch=4, log_every=1, val_every=4, ckpt_every=3, workers=0)


def run_toy(tmp_path, cfg=CFG, fp="a", nan_at=None, live=True):
    phase = toy_phase(nan_at)
    summary = fit(phase, Points(), cfg, run_dir=tmp_path / "ck", seed=0, fp=fp, dist=Dist(),
                  live_dir=tmp_path / "live" if live else None, progress=False)
    return phase.modules["model"], summary


def test_resume_gives_the_uninterrupted_result(tmp_path):
    straight, _ = run_toy(tmp_path / "a")
    run_toy(tmp_path / "b", replace(CFG, iters=7))  # stops after iteration 7 (checkpoint at 7)
    resumed, summary = run_toy(tmp_path / "b")
    assert summary["resumed_from"] == 7 and summary["iterations"] == 12
    assert torch.equal(straight.weight, resumed.weight) and torch.equal(straight.bias, resumed.bias)
    assert straight.weight[0, 0].item() != pytest.approx(toy_phase().modules["model"].weight[0, 0].item())
    # dvclive: the resumed log continues without duplicated steps
    steps = np.loadtxt(tmp_path / "b/live/plots/metrics/train/loss.tsv", skiprows=1, usecols=0)
    assert steps.tolist() == list(range(1, 13))


def test_checkpoint_of_another_configuration_is_ignored(tmp_path, caplog):
    run_toy(tmp_path, replace(CFG, iters=6), fp="old")
    _, summary = run_toy(tmp_path, fp="new")
    assert summary["resumed_from"] == 0 and "another configuration" in caplog.text


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(VQEError, match="non-finite loss .* at iteration 8"):
        run_toy(tmp_path, nan_at=8)
    state = torch.load(tmp_path / "ck/last.pt", weights_only=False)
    assert state["iteration"] == 6
    assert all(torch.isfinite(v).all() for v in state["modules"]["model"].values())


def test_fingerprint_and_source_digest_change_with_their_inputs(tmp_path):
    assert checkpoint.fingerprint({"a": 1}) == checkpoint.fingerprint({"a": 1}) != checkpoint.fingerprint({"a": 2})
    (tmp_path / "m.py").write_text("x = 1\n")
    before = checkpoint.source_digest(tmp_path)
    (tmp_path / "m.py").write_text("x = 2\n")
    assert checkpoint.source_digest(tmp_path) != before


# --- Stage A through the CLI: SIGKILL + resume, and DDP ------------------------------------------

def _params_file(tmp_path: Path, smoke_manifest, **train) -> Path:
    from vqe.config import compose

    data = compose("smoke", ROOT / "conf")
    data["synth"]["out_dir"] = str(smoke_manifest.root)
    data["stage_a"]["train"].update(train)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _train_cmd(params: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vqe.cli", "train", "stage_a", "--params", str(params), "--out-dir", str(out),
            "--model-out", str(out / "stage_a.pt"), "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_stage_a_killed_with_sigkill_resumes_to_the_same_model(tmp_path, smoke_manifest):
    params = _params_file(tmp_path, smoke_manifest, iters=40, ckpt_every=2, val_every=1000)
    subprocess.run(_train_cmd(params, tmp_path / "straight"), check=True, env=_env(), capture_output=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(params, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, deadline = out / "checkpoints/stage_a/last.pt", time.time() + 120
    while time.time() < deadline:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["iteration"] >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=False)["iteration"]
    assert 6 <= killed_at < 40 and not (out / "stage_a.pt").exists()

    subprocess.run(_train_cmd(params, out), check=True, env=_env(), capture_output=True)
    summary = yaml.safe_load((out / "results/train/stage_a.json").read_text())
    assert summary["resumed_from"] == killed_at and summary["iterations"] == 40
    a, b = load_model(tmp_path / "straight/stage_a.pt"), load_model(out / "stage_a.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_stage_a_under_torchrun_ddp_gloo_matches_one_process(tmp_path, smoke_manifest):
    """Two processes splitting the global batch (gradients averaged by DDP) = one process, whole batch."""
    params = _params_file(tmp_path, smoke_manifest, iters=4, batch=4, ckpt_every=4, val_every=1000)
    subprocess.run(_train_cmd(params, tmp_path / "one"), check=True, env=_env(), capture_output=True)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    ddp = [torchrun, "--standalone", "--nproc_per_node=2", "-m", *_train_cmd(params, tmp_path / "two")[2:]]
    result = subprocess.run(ddp, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = yaml.safe_load((tmp_path / "two/results/train/stage_a.json").read_text())
    assert summary["processes"] == 2
    a, b = load_model(tmp_path / "one/stage_a.pt"), load_model(tmp_path / "two/stage_a.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=2e-5, rtol=1e-4), name
    assert a.conv_last.weight.abs().sum() > 0  # trained: the zero-initialised last conv has moved
