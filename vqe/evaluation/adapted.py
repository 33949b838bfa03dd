"""The "+ adapt" rows of the evaluation: a model adapted to each test encode before it restores it, exactly as
`vqe enhance --adapt SECONDS` does (`vqe.inference.adapt`)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vqe.config import EvalParams
from vqe.data.manifest import EncodeEntry, Manifest
from vqe.evaluation.evaluate import ADAPT_SUFFIX, Method, Runs, eval_device, model_path
from vqe.inference.adapt import adapt, input_bpp
from vqe.inference.enhance import restore_span
from vqe.models.build import load_model
from vqe.util.errors import VQEError


def adapt_method_by_name(name: str, manifest: Manifest, params: EvalParams, seconds: float,
                         models_dir: str | Path = "models"):
    """The evaluation method `<model id>_adapt`: the model of `vqe.evaluation.evaluate.model_path(<model id>)`, adapted
    to each encode for `seconds` before it restores it."""
    if not name.endswith(ADAPT_SUFFIX):
        raise VQEError(f"{name!r} is not an adapted method (<model id>{ADAPT_SUFFIX})")
    device = eval_device(params)
    model = load_model(model_path(name[:-len(ADAPT_SUFFIX)], models_dir), device)
    return adapted_method(model, manifest, seconds, batch=params.enhance_batch, device=device)


def adapted_method(model: nn.Module, manifest: Manifest, seconds: float, *, batch: int = 1,
                   device: str | torch.device = "cpu") -> Method:
    """`model_method` after test-time adaptation (`vqe.inference.adapt`) to each encode's own decoded frames, with no
    ground truth, exactly as `vqe enhance --adapt SECONDS` does; every adaptation starts from `model`.

    The method's `info` (merged into the encode's row) records what adaptation did: its seconds and
    iterations, the iteration its hold-out rule kept and that state's hold-out gain."""

    def run(entry: EncodeEntry, span: Runs) -> list[np.ndarray]:
        frames = np.asarray(manifest.lq(entry, low_res=True))
        adapted, report = adapt(copy.deepcopy(model), frames, bpp=input_bpp(manifest.root / entry.stream),
                                fps=entry.fps, seconds=seconds, device=device, progress=False)
        run.info = {"adapt": {"seconds": report.seconds, "iterations": report.iterations,
                              "kept_iteration": report.kept_iteration, "holdout_gain": report.kept_gain}}
        return [restore_span(adapted, frames, r[0], len(r), batch=batch, device=device) for r in span]

    run.info = {}
    return run
