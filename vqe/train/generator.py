"""Our two-stage generator on the trainer's side: the Stage A it starts from, its optimiser groups, and the
generator itself, built by name (`vqe.registry`), so that the NoGAN schedule, which also trains the fast
restorer, does not import Stage B's file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from vqe.models.build import load_model, model_class
from vqe.util.errors import VQEError


def load_stage_a(path: str | Path) -> nn.Module:
    """The phase-1 model a two-stage generator starts from; any other model file is an error naming it."""
    stage_a = load_model(path)
    if getattr(stage_a, "arch", None) != "stage_a":
        raise VQEError(f"{path}: expected a Stage A model, got {stage_a.arch!r}")
    return stage_a


def generator_groups(gen: nn.Module, a_lr: float, b_lr: float, offset_lr_mult: float) -> list[dict[str, Any]]:
    """Optimiser groups of G = G_B(G_A(.)): Stage A only when `a_lr` > 0 (frozen otherwise), Stage B at `b_lr`."""
    gen.stage_a.requires_grad_(a_lr > 0)
    groups = gen.stage_a.param_groups(a_lr, offset_lr_mult) if a_lr > 0 else []
    if gen.stage_b is not None:
        groups.append({"params": list(gen.stage_b.parameters()), "lr": b_lr})
    return groups


def generator_from_stage_a(stage_a: nn.Module, stage_b: dict[str, Any]) -> nn.Module:
    """G = G_B(G_A(.)) around trained Stage A weights, Stage B starting as the identity (`Generator.from_stage_a`),
    built through the registry: a trainer of the generator depends on its file by name, not by import."""
    return model_class("generator").from_stage_a(stage_a, stage_b)
