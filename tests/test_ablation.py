"""The ablation study: variant parameters, scoring, and the mean/spread of differences over seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ROOT, smoke_params_for

from vqe.config import compose, params_from_dict, with_overrides
from vqe.inference.enhance import restore_span
from vqe.metrics.perceptual import lpips_model
from vqe.models.build import load_model
from vqe.studies.ablation import (
    load_results,
    stage_a_params,
    stage_a_path,
    summarise,
    variant_params,
    write_summary,
)
from vqe.studies.ablation_stage_a import train_stage_as
from vqe.studies.ablation_stage_b import run_variant
from vqe.util.errors import VQEError


@pytest.fixture(scope="module")
def tiny():
    return params_from_dict(compose("tiny", ROOT / "conf"), origin="tiny")


def test_every_variant_changes_exactly_its_switch_at_the_shared_budget(tiny):
    full = variant_params(tiny, "full", seed=1)
    assert full.seed == 1 and full.stage_a.train.iters == tiny.ablation.stage_a_iters
    assert full.stage_b.train.iters == tiny.ablation.stage_b_iters
    assert (full.stage_b.train.warmup, full.stage_b.train.ramp) == (tiny.ablation.warmup, tiny.ablation.ramp)
    assert full.stage_b == variant_params(tiny, "full", seed=0).stage_b
    assert tiny.stage_a.train.ema > 0 and full.stage_a.train.ema == 0 and full.stage_b.train.ema == 0  # no EMA
    switched = {
        "no_stage_b": lambda p: p.stage_b.model.enabled is False,
        "no_pingpong": lambda p: p.stage_b.loss.pp == 0.0,
        "spatial_d": lambda p: p.stage_b.disc.kinds == ["spatial"],
        "no_ecbam": lambda p: p.stage_a.model.attention is False,
        "flow_loss": lambda p: p.stage_b.loss.temporal == "flow",
    }
    for name, check in switched.items():
        p = variant_params(tiny, name, seed=1)
        assert check(p) and not check(full), name
        assert p.stage_b.train == full.stage_b.train and p.stage_a.train == full.stage_a.train, name
    assert stage_a_params(tiny, "no_ecbam", 0).stage_a.model.attention is False
    assert stage_a_params(tiny, "ecbam", 0).stage_a == full.stage_a


def test_bad_variants_are_named(tiny):
    with pytest.raises(VQEError, match="no variant 'nope'"):
        variant_params(tiny, "nope", 0)
    with pytest.raises(VQEError, match="ablation.variants.x"):
        with_overrides(tiny, ["stage_b.loss.temporal=warp"], "ablation.variants.x")
    data = compose("tiny", ROOT / "conf")
    data["ablation"]["variants"]["odd"] = {"stage_a": "missing", "set": []}
    with pytest.raises(VQEError, match="ablation.variants.odd.stage_a"):
        params_from_dict(data)
    del data["ablation"]["variants"]["odd"], data["ablation"]["variants"]["full"]
    with pytest.raises(VQEError, match="needs a 'full' variant"):
        params_from_dict(data)


def _result(name, runs):
    return {"variant": name, "runs": [{"seed": s, "psnr": p, "lpips": l, "tlp": t, "train_seconds": 1.0}
                                      for s, p, l, t in runs]}


def test_summary_pairs_each_seed_with_the_full_model_of_that_seed(tmp_path):
    results = {"full": _result("full", [(0, 25.0, 0.40, 0.010), (1, 25.2, 0.42, 0.012)]),
               "no_x": _result("no_x", [(1, 25.2, 0.45, 0.012), (0, 24.8, 0.41, 0.020)])}
    for name, res in results.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
    summary = write_summary(load_results(tmp_path, ["full", "no_x"]), tmp_path / "ablations.json")
    v = summary["variants"]["no_x"]
    assert v["d_psnr"]["mean"] == pytest.approx(-0.1) and v["d_psnr"]["spread"] == pytest.approx(0.1)
    assert v["d_lpips"]["mean"] == pytest.approx(0.02) and v["d_lpips"]["spread"] == pytest.approx(0.01)
    assert v["d_tlp"]["mean"] == pytest.approx(0.005) and v["d_tlp"]["spread"] == pytest.approx(0.005)
    assert v["psnr"]["mean"] == pytest.approx(25.0) and v["train_seconds"] == 2.0
    assert summary["variants"]["full"]["d_psnr"] == {"mean": 0.0, "spread": 0.0}
    assert json.loads((tmp_path / "ablations.json").read_text()) == summary
    results["no_x"]["runs"].pop()
    with pytest.raises(VQEError, match="do not match"):
        summarise(results)
    with pytest.raises(VQEError, match="'full' reference"):
        summarise({"no_x": results["no_x"]})
    with pytest.raises(VQEError, match="ablation@gone"):
        load_results(tmp_path, ["gone"])


def test_variants_train_on_their_stage_a_and_are_scored_on_test_frames(smoke_manifest, tmp_path):
    params = smoke_params_for(smoke_manifest)
    models, runs = tmp_path / "models", tmp_path / "runs"
    with pytest.raises(VQEError, match="ablation_stage_a"):
        run_variant(params, "full", models_dir=models, out_path=tmp_path / "full.json", run_dir=runs)
    trained = train_stage_as(params, "ecbam", models_dir=models, run_dir=runs, progress=False)
    assert [t["seed"] for t in trained] == params.ablation.seeds and trained[0]["iterations"] == 2
    a_path = stage_a_path(models, "ecbam", 0)
    stage_a = load_model(a_path)
    assert stage_a.meta["profile"] == "smoke"

    plain = run_variant(params, "no_stage_b", models_dir=models, out_path=tmp_path / "no_stage_b.json",
                        run_dir=runs, progress=False)
    # No Stage B: the variant's output is its Stage A's, restored as `vqe enhance` would and scored here
    # from the formulas (numpy PSNR, the lpips package's own forward) on the middle test frames.
    entry = next(e for e in smoke_manifest.select("test") if e.kbps_target == params.eval.main_kbps)
    count = params.ablation.eval_frames
    start = (entry.frames - count) // 2
    out = restore_span(stage_a, smoke_manifest.lq(entry, low_res=True), start, count, batch=1)
    gt = np.asarray(smoke_manifest.gt(entry.clip)[start:start + count])
    mse = ((out.astype(np.float64) - gt) ** 2).mean(axis=(1, 2, 3))
    net = lpips_model("alex", "cpu")

    def lp(a: np.ndarray, b: np.ndarray) -> float:
        t = [torch.from_numpy(x.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1 for x in (a, b)]
        return float(net(t[0], t[1]))

    expected = {"psnr": float(np.mean(10 * np.log10(255**2 / mse))),
                "lpips": float(np.mean([lp(o, g) for o, g in zip(out, gt)])),
                "tlp": float(np.mean([abs(lp(out[t], out[t - 1]) - lp(gt[t], gt[t - 1])) for t in range(1, count)]))}
    run = plain["runs"][0]
    assert run["iterations"] == 0
    for metric in ("psnr", "lpips", "tlp"):
        assert run[metric] == pytest.approx(expected[metric], rel=1e-5, abs=1e-6)

    full = run_variant(params, "full", models_dir=models, out_path=tmp_path / "full.json", run_dir=runs,
                       progress=False)
    assert full["runs"][0]["iterations"] == params.ablation.stage_b_iters
    assert full["runs"][0]["psnr"] != run["psnr"]  # Stage B trained: a different output
    assert json.loads((tmp_path / "full.json").read_text())["variant"] == "full"
