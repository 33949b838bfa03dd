"""`python -m vqe.util.notebook`: how every DVC stage runs its notebook, and where the executed copy goes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vqe.util.notebook import command, main, output_folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_runs_papermill_with_the_kernel_in_notebooks(tmp_path):
    args = command("02b_evaluate", "stage_a", [("method", "stage_a"), ("adapt_seconds", "2")], tmp_path / "nb")
    assert args == ["papermill", "-k", "python3", "--cwd", "notebooks", "--log-level", "WARNING",
                    "-p", "method", "stage_a", "-p", "adapt_seconds", "2",
                    "notebooks/02b_evaluate.ipynb", str(tmp_path / "nb" / "02b_evaluate_stage_a.ipynb")]
    assert command("01_synthesise", "", [], Path("out"))[-1] == "out/01_synthesise.ipynb"


def test_the_output_folder_is_params_paths_notebooks(tmp_path):
    assert output_folder(ROOT / "params.yaml") == Path("results/notebooks")
    (tmp_path / "params.yaml").write_text("paths: {notebooks: elsewhere/nb}\n")
    assert output_folder(tmp_path / "params.yaml") == Path("elsewhere/nb")


def test_a_params_file_without_the_folder_is_an_error_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    assert main(["01_synthesise"]) == 2
    assert "params.yaml: no paths.notebooks" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]  # no folder made, nothing run


def test_it_makes_the_folder_and_runs_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("paths: {notebooks: deep/nb}\n")
    ran = []
    monkeypatch.setattr(subprocess, "call", lambda args: ran.append(args) or 0)
    assert main(["04_nogan", "fast", "-p", "model", "nogan_fast"]) == 0
    assert (tmp_path / "deep" / "nb").is_dir() and ran[0][-1] == "deep/nb/04_nogan_fast.ipynb"
    assert ran[0][-4:-2] == ["model", "nogan_fast"]
