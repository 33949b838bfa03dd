"""The timing scripts under benchmarks/ that the README's speed figures come from: their bookkeeping, on small inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_times_groups_every_stage_by_its_part_of_the_pipeline(tmp_path):
    st = _script("stage_times")
    rows = {"edvr", "mfqe2"}
    assert st.group_of("12_train_baseline_edvr", rows) == "Table 1 baselines: training"
    assert st.group_of("02b_evaluate_edvr", rows) == "Table 1 baselines: scoring"
    assert st.group_of("02b_evaluate_stage_a", rows) == "our models: scoring"  # not a baseline row
    assert st.group_of("02_train_stage_a", rows) == "our models: training"
    assert st.group_of("01b_baselines_input", rows) == "non-learned rows"
    assert st.group_of("05b_ablation_full", rows) == "ablations"
    assert st.group_of("99_something_new", rows) == "other"
    times = {"01_synthesise": 60.0, "02_train_stage_a": 120.0, "02b_evaluate_edvr": 30.0, "02b_evaluate_stage_a": 90.0,
             "12_train_baseline_edvr": 240.0}
    minutes = st.group_minutes(times, rows)
    assert minutes == {"synthesis": 1.0, "Table 1 baselines: training": 4.0, "Table 1 baselines: scoring": 0.5,
                       "our models: training": 2.0, "our models: scoring": 1.5}
    assert list(minutes)[0] == "synthesis"  # in pipeline order, not by size
    st.figure(times, rows, "test host", tmp_path / "stage_times.png")
    assert (tmp_path / "stage_times.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_times_reads_papermill_durations(tmp_path):
    st = _script("stage_times")
    for name, seconds in (("02_train_stage_a", 12.5), ("09_table1", 3.0)):
        nb = {"metadata": {"papermill": {"duration": seconds}}, "cells": [], "nbformat": 4, "nbformat_minor": 5}
        (tmp_path / f"{name}.ipynb").write_text(json.dumps(nb))
    assert st.stage_seconds(tmp_path) == {"02_train_stage_a": 12.5, "09_table1": 3.0}


def test_scoring_speed_times_an_evaluation_and_its_scoring(smoke_params, smoke_manifest):
    sp = _script("scoring_speed")
    row = sp.time_evaluation("input", smoke_params, smoke_manifest)
    encodes = len(smoke_manifest.select("test"))
    assert row["method"] == "input" and row["frames_scored"] > 0 and row["frames_scored"] % encodes == 0
    assert 0 <= row["method_seconds"] < row["seconds"]
    assert row["scoring_seconds"] == pytest.approx(row["seconds"] - row["method_seconds"], abs=0.02)
    assert len(row["load_before"]) == 3
