"""An untrained model must score exactly the compressed-input row.

Every model adds a zero-initialised residual to the project's one bicubic up-scale (`vqe.util.upscale`), and
the input row is that same up-scale of the decode: scored by the real evaluation code (saved model,
`load_model`, `method_by_name`, `evaluate_methods`), a fresh model reproduces the input's PSNR. A
different kernel on either side (FFmpeg's bicubic, Lanczos) would miss by ~0.01 dB, the size of the gains
this project measures.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest

from vqe.evaluation.evaluate import evaluate_methods, method_by_name
from vqe.models.build import save_model
from vqe.models.fast import FastRestorer
from vqe.models.stage_a import StageA
from vqe.models.stage_b import Generator


def fresh_models(params) -> dict:
    scale = params.synth.scale
    return {
        "stage_a": StageA(**asdict(params.stage_a.model), scale=scale),
        "gan_evh": Generator(stage_a=asdict(params.stage_a.model), stage_b=asdict(params.stage_b.model), scale=scale),
        "nogan_fast": FastRestorer(**asdict(params.nogan_fast.model), scale=scale),
    }


@pytest.fixture(scope="module")
def scores(smoke_manifest, smoke_params, tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    for name, model in fresh_models(smoke_params).items():
        save_model(models_dir / f"{name}.pt", model)
    ev = replace(smoke_params.eval, vmaf=False, device="cpu")
    names = ["input", "lanczos", "stage_a", "gan_evh", "nogan_fast"]
    methods = {m: method_by_name(m, smoke_manifest, ev, models_dir) for m in names}
    return evaluate_methods(methods, smoke_manifest, ev, results_dir=tmp_path_factory.mktemp("results"))


@pytest.mark.parametrize("model", ["stage_a", "gan_evh", "nogan_fast"])
def test_fresh_model_scores_the_input_row(scores, model):
    assert len(scores[model]) == len(scores["input"]) >= 2  # every test bitrate
    for got, ref in zip(scores[model], scores["input"]):
        assert got["rate_id"] == ref["rate_id"] and got["frames_scored"] == ref["frames_scored"]
        assert abs(got["psnr"] - ref["psnr"]) <= 0.001, (model, got["rate_id"], got["psnr"], ref["psnr"])
        assert abs(got["lpips"] - ref["lpips"]) <= 1e-4


def test_the_tolerance_separates_kernels(scores):
    """Lanczos, another up-scaling of the same decode, is outside the tolerance: the test can fail."""
    gaps = [abs(a["psnr"] - b["psnr"]) for a, b in zip(scores["lanczos"], scores["input"])]
    assert min(gaps) > 0.001, gaps


def test_every_row_records_its_span_and_its_bitrate(scores, smoke_manifest, smoke_params):
    from vqe.data.codec import frame_packets

    ev = smoke_params.eval
    for row in scores["input"]:
        entry = next(e for e in smoke_manifest.select("test") if e.rate_id == row["rate_id"])
        expected = [t for first in np.linspace(0, entry.frames - ev.segment_frames, ev.segments).round().astype(int)
                    for t in range(first, first + ev.segment_frames)]
        assert row["frames_scored"] == expected
        bits, _ = frame_packets(smoke_manifest.root / entry.stream)
        assert row["kbps_scored"] == pytest.approx(bits[expected].sum() / len(expected) * entry.fps / 1000)
        assert row["kbps"] == entry.kbps and row["kbps_scored"] != row["kbps"]


@pytest.mark.parametrize("consecutive", [False, True])
def test_validation_scores_as_the_evaluation_does(smoke_manifest, smoke_params, consecutive):
    """Training validation goes through the same restore and metrics code: a fresh model gains exactly 0,
    and the input row is the PSNR of the stored up-scaled decode on the validation frames."""
    import torch

    from vqe.metrics.fidelity import psnr
    from vqe.train.core.validate import Validator, frame_indices

    model = fresh_models(smoke_params)["stage_a"].eval()
    v = Validator(smoke_manifest, model.n, low_res=True, kbps=smoke_params.eval.main_kbps, frames=3,
                  device=torch.device("cpu"), split="test", consecutive=consecutive)
    scores = v(model)
    assert scores["psnr_gain"] == 0.0 and scores["lpips"] == pytest.approx(v.input_scores["lpips"], abs=1e-7)
    assert ("tlp" in scores) == consecutive
    entry = next(e for e in smoke_manifest.select("test") if e.kbps_target == smoke_params.eval.main_kbps)
    t = frame_indices(entry.frames, 3, consecutive)
    expected = psnr(np.asarray(smoke_manifest.lq(entry)[t]), np.asarray(smoke_manifest.gt(entry.clip)[t])).mean()
    assert v.input_scores["psnr"] == pytest.approx(expected, abs=1e-9)
