"""vqe.registry names every architecture once: each entry imports and builds, and nothing else names one."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from vqe.config import load_params
from vqe.models.build import build_model, model_class
from vqe.registry import ARCHS, BASELINE_ARCHS, GAMES, OURS, SEQUENCE_ARCHS, TRAINED
from vqe.util.errors import VQEError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_architecture_is_its_file_and_class(arch):
    spec = ARCHS[arch]
    assert (ROOT / spec.file).is_file()
    cls = model_class(arch)
    assert cls.__module__ == spec.module and cls.__name__ == spec.cls and cls.arch == arch


@pytest.mark.parametrize("name", sorted(TRAINED))
def test_every_trained_model_names_its_trainer(name):
    """The trainer module a registry entry names exists and defines the `train_<phase>` that `vqe train` runs."""
    trainer = importlib.import_module(TRAINED[name].trainer)
    assert callable(getattr(trainer, f"train_{name}"))


def test_the_groups_partition_the_architectures():
    assert set(OURS) | set(BASELINE_ARCHS) == set(ARCHS) and not set(OURS) & set(BASELINE_ARCHS)
    assert SEQUENCE_ARCHS == {"tecogan"}
    assert {t.arch for t in TRAINED.values()} <= set(OURS)


def test_every_profiles_baseline_rows_build(smoke_params):
    params = load_params(ROOT / "params.yaml")
    for row, arch in params.baselines.rows.items():
        assert params.baselines.systems[row].arch == arch
    for row, arch in smoke_params.baselines.rows.items():
        model = build_model(arch, dict(smoke_params.baselines.systems[row].model), scale=2)
        assert model.arch == arch and model.scale == 2


@pytest.mark.parametrize("game", sorted(GAMES))
def test_every_game_is_a_function_returning_an_adversary(game):
    module, name = GAMES[game].split(":")
    assert callable(getattr(importlib.import_module(module), name))


def test_an_unknown_architecture_names_the_known_ones():
    with pytest.raises(VQEError, match="unknown model architecture 'ghost'; known: stage_a, generator, fast"):
        build_model("ghost", {})
