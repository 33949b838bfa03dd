"""The repository root from anywhere inside it, so the notebooks run from the root or from notebooks/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqe.util.errors import VQEError
from vqe.util.paths import enter_repo, repo_root

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / "notebooks" / "deep").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text("seed: 0\n")
    return root


def test_repo_root_from_a_subfolder_and_from_the_root(repo, monkeypatch):
    assert repo_root(repo / "notebooks" / "deep") == repo
    assert repo_root(repo) == repo
    monkeypatch.chdir(repo / "notebooks")
    assert repo_root() == repo


def test_repo_root_needs_both_markers(repo):
    inner = repo / "notebooks"
    (inner / "params.yaml").write_text("seed: 1\n")  # params.yaml alone is not a repository root
    assert repo_root(inner / "deep") == repo
    (inner / "dvc.yaml").write_text("stages: {}\n")
    assert repo_root(inner / "deep") == inner  # the nearest one wins


def test_repo_root_outside_any_repository_names_the_start(tmp_path):
    start = tmp_path / "elsewhere"
    start.mkdir()
    with pytest.raises(VQEError, match=str(start)) as err:
        repo_root(start)
    assert "dvc.yaml" in str(err.value) and "params.yaml" in str(err.value)


def test_enter_repo_changes_to_the_root_and_is_a_no_op_there(repo, monkeypatch):
    monkeypatch.chdir(repo / "notebooks" / "deep")
    assert enter_repo() == repo and Path.cwd() == repo.resolve()
    assert enter_repo() == repo and Path.cwd() == repo.resolve()


def test_this_checkout_is_found_from_notebooks(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")
    assert repo_root() == ROOT


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_notebook_enters_the_repository_first(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    params = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    first = next(c for c in cells[params + 1:] if c["cell_type"] == "code")
    source = "".join(first["source"])
    assert "from vqe.util.paths import enter_repo\n" in source and "\nenter_repo()\n" in source
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)  # committed without outputs
