"""The scaling study: recipes as validated overrides, curves read back from dvclive logs, the figure's data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import profile_params

import vqe.reporting.figures
from vqe.reporting.figures import SCALING_PANELS, scaling
from vqe.studies.scaling import CURVE_KEYS, MAIN, collect, read_curve, recipe_params
from vqe.util.errors import VQEError


def _log_run(root: Path, name: str, points: list[dict[str, float]], parameters: int = 1000) -> None:
    """What `fit` leaves behind for one recipe: a dvclive folder of val/*.tsv and the summary JSON."""
    folder = root / name / "plots" / "metrics" / "val"
    folder.mkdir(parents=True)
    for key in CURVE_KEYS:
        rows = "".join(f"{p['iteration']}\t{p[key]}\n" for p in points)
        (folder / f"{key}.tsv").write_text(f"step\t{key}\n{rows}")
    (root / f"{name}.json").write_text(json.dumps({"parameters": parameters, "iterations": points[-1]["iteration"],
                                                   "seconds": points[-1]["seconds"], "it_per_s": 2.0, "threads": 2}))


def _points(gain: float) -> list[dict[str, float]]:
    return [{"iteration": it, "seconds": 10.0 * it, "psnr_gain": gain * it, "lpips_gain": -0.01 * it,
             "test_psnr_gain": gain * it / 2, "test_lpips_gain": -0.005 * it} for it in (1, 2, 4)]


def _study_params(recipes: dict[str, list[str]]):
    params = profile_params("tiny")
    return replace(params, scaling=replace(params.scaling, recipes=recipes))


def test_recipe_overrides_are_applied_and_validated():
    params = _study_params({"stack": ["stage_a.model.align=stack", "stage_a.train.lr=1e-3"]})
    p = recipe_params(params, "stack")
    assert p.stage_a.model.align == "stack" and p.stage_a.train.lr == 1e-3
    assert p.stage_b == params.stage_b  # nothing else changes
    with pytest.raises(VQEError, match="no recipe 'nope'"):
        recipe_params(params, "nope")
    with pytest.raises(VQEError, match="scaling.recipes.bad"):
        recipe_params(_study_params({"bad": ["stage_a.model.align=diagonal"]}), "bad")


def test_recipes_may_only_change_stage_a():
    params = _study_params({"sneaky": ["stage_b.model.channels=8"]})
    with pytest.raises(VQEError, match="more than the Stage A recipe"):
        params.scaling.validate()


def test_curves_are_read_back_from_the_logs_and_collected(tmp_path):
    _log_run(tmp_path, "a", _points(0.1))
    _log_run(tmp_path, "b", _points(0.2), parameters=5)
    _log_run(tmp_path / "train", "stage_a", _points(0.3), parameters=7)  # train_stage_a's run: recipe `main`
    assert read_curve(tmp_path / "a") == _points(0.1)
    params = _study_params({"a": [], "b": ["stage_a.train.lr=1e-3"]})
    study = collect(params, tmp_path, tmp_path / "scaling.json", main_dir=tmp_path / "train" / "stage_a")
    assert json.loads((tmp_path / "scaling.json").read_text()) == study
    assert list(study["recipes"]) == [MAIN, "a", "b"]
    assert study["recipes"]["b"]["curve"] == _points(0.2) and study["recipes"]["b"]["parameters"] == 5
    assert study["recipes"]["b"]["overrides"] == ["stage_a.train.lr=1e-3"]
    assert study["recipes"][MAIN]["curve"] == _points(0.3) and study["recipes"][MAIN]["overrides"] == []
    assert study["kbps"] == params.eval.main_kbps and study["span"]["segments"] == params.scaling.segments


def test_main_is_the_profiles_own_stage_a_and_not_a_recipe_name():
    with pytest.raises(VQEError, match="scaling.recipes.main"):
        _study_params({MAIN: ["stage_a.train.lr=1e-3"]}).scaling.validate()


def test_a_missing_log_names_the_file(tmp_path):
    _log_run(tmp_path, "a", _points(0.1))
    (tmp_path / "a" / "plots" / "metrics" / "val" / "test_lpips_gain.tsv").unlink()
    with pytest.raises(VQEError, match="test_lpips_gain.tsv"):
        read_curve(tmp_path / "a")
    with pytest.raises(VQEError, match="stage_a.json: missing; run the train_stage_a stage"):
        collect(_study_params({"a": []}), tmp_path, tmp_path / "s.json", main_dir=tmp_path / "train" / "stage_a")
    _log_run(tmp_path / "train", "stage_a", _points(0.3))
    with pytest.raises(VQEError, match="b.json: missing; run the scaling_run stage"):
        collect(_study_params({"b": []}), tmp_path, tmp_path / "s.json", main_dir=tmp_path / "train" / "stage_a")


def test_scaling_figure_draws_val_and_test_per_recipe_on_a_log_axis(tmp_path, monkeypatch):
    figs, real = [], vqe.reporting.figures.save
    monkeypatch.setattr(vqe.reporting.figures, "save", lambda fig, path: (figs.append(fig), real(fig, path))[1])
    study = {"kbps": 62.5, "recipes": {"a": {"curve": _points(0.1)}, "b": {"curve": _points(0.3)}}}
    assert scaling(study, tmp_path / "s.png").stat().st_size > 10_000
    axes = figs[0].axes
    for ax, (col, _) in zip(axes, SCALING_PANELS):
        assert ax.get_xscale() == "log"
        drawn = {tuple(float(v) for v in ln.get_ydata()) for ln in ax.lines if len(ln.get_xdata()) == 3}
        expected = {tuple(p[prefix + col] for p in study["recipes"][r]["curve"])
                    for r in study["recipes"] for prefix in ("", "test_")}
        assert drawn == expected
