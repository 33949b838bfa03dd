"""CUDA-only checks, run by `benchmarks/gpu_check.sh` on a GPU (skipped elsewhere): torchvision's deformable
convolution against our CPU equivalent, bf16 / fp16 training steps, and `vqe enhance` on CUDA against the CPU."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from vqe.config import compose, params_from_dict
from vqe.inference.enhance import enhance_frames
from vqe.inference.export import bench_frames
from vqe.models.build import load_model
from vqe.models.parts.dcn import deform_conv2d
from vqe.models.stage_a import StageA

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only (benchmarks/gpu_check.sh)")
CUDA = torch.device("cuda")


def _dcn_inputs(device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 12, 14, generator=g, dtype=torch.float64)
    offset = torch.randn(2, 2 * 2 * 9, 12, 14, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(2, 2 * 9, 12, 14, generator=g, dtype=torch.float64)
    weight = torch.randn(6, 8, 3, 3, generator=g, dtype=torch.float64) * 0.1
    bias = torch.randn(6, generator=g, dtype=torch.float64)
    return [t.to(device).requires_grad_() for t in (x, offset, mask, weight, bias)]


def test_torchvision_deform_conv_on_cuda_equals_ours_on_the_cpu_forward_and_gradient():
    cpu, gpu = _dcn_inputs(torch.device("cpu")), _dcn_inputs(CUDA)
    ours = deform_conv2d(cpu[0], cpu[1], cpu[3], cpu[4], cpu[2], padding=1, impl="torch")
    theirs = deform_conv2d(gpu[0], gpu[1], gpu[3], gpu[4], gpu[2], padding=1, impl="torchvision")
    assert torch.allclose(ours, theirs.cpu(), atol=1e-9)
    ours.square().sum().backward()
    theirs.square().sum().backward()
    for a, b in zip(cpu, gpu):
        assert torch.allclose(a.grad, b.grad.cpu(), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_steps_stay_finite(amp):
    from vqe.train.stage_a import stage_a_phase

    params = params_from_dict(compose("smoke"))
    cfg = dataclasses.replace(params.stage_a.train, amp=amp, device="cuda")
    torch.manual_seed(0)
    model = StageA(**asdict(params.stage_a.model), scale=params.synth.scale).to(CUDA)
    phase, _, describe = stage_a_phase(model, cfg, CUDA)
    n, p = params.stage_a.model.n, cfg.patch
    lq_size = p // params.synth.scale if params.stage_a.model.mode == "sra" else p
    for it in range(5):
        batch = (torch.rand(2, 2 * n + 1, 3, lq_size, lq_size, device=CUDA), torch.rand(2, 3, p, p, device=CUDA))
        out = phase.step(batch, it)
        assert math.isfinite(out["loss"])
    assert describe()["amp"] == amp
    assert all(torch.isfinite(q).all() for q in model.parameters())


@pytest.mark.parametrize("amp,limit", [(False, 2), (True, 12)])
def test_enhance_on_cuda_equals_the_cpu(amp, limit):
    frames = bench_frames(160, 96, 6)
    cpu = np.stack(list(enhance_frames(load_model("models/release/gan_evh.pt", "cpu"), frames, batch=1)))
    gpu = np.stack(list(enhance_frames(load_model("models/release/gan_evh.pt", "cuda"), frames, batch=4,
                                       device="cuda", amp=amp)))
    diff = np.abs(cpu.astype(int) - gpu)
    mse = float((diff.astype(float) ** 2).mean())
    assert diff.max() <= limit and 10 * np.log10(255 ** 2 / max(mse, 1e-12)) > (60 if not amp else 40)
