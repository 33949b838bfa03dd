"""What an edit re-runs: the invalidation table computed from dvc.yaml as DVC resolves it.

An edit of a file invalidates every stage with a dependency on it (the file, or a folder above it) and then,
transitively, every stage that depends on an output of an invalidated stage. tests/test_params_usage.py checks
that each stage's deps cover its notebook's import closure; this file checks the architecture files that the
registry loads by name (invisible to a static import walk), and that the closures stay small.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import pytest

from vqe.config import load_params
from vqe.registry import ARCHS, TRAINED

ROOT = Path(__file__).resolve().parents[1]
OUR_TRAINING = {"train_stage_a", "train_stage_b", "train_nogan", "train_nogan_fast"}


@lru_cache(maxsize=None)
def pipeline() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """stage name -> (deps, outs), paths relative to the repository, as `dvc repro` sees them."""
    from dvc.repo import Repo

    repo = Repo(str(ROOT))
    try:
        rel = lambda o: Path(os.path.relpath(o.fs_path, ROOT)).as_posix()  # noqa: E731
        return {s.addressing: (frozenset(rel(d) for d in s.deps), frozenset(rel(o) for o in s.outs))
                for s in repo.index.stages}
    finally:
        repo.close()


def _covers(parent: str, path: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def invalidated(edited: str) -> set[str]:
    """The stages `dvc repro` re-runs after an edit of `edited`."""
    stages = pipeline()
    todo = [name for name, (deps, _) in stages.items() if any(_covers(d, edited) for d in deps)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        outs = stages[name][1]
        todo += [other for other, (deps, _) in stages.items()
                 if any(_covers(o, d) or _covers(d, o) for d in deps for o in outs)]
    return seen


def _family(names: set[str]) -> set[str]:
    """Stage groups: `train_baseline@edvr` -> `train_baseline`."""
    return {n.split("@")[0] for n in names}


def table() -> dict[str, list[str]]:
    """The invalidation table of the edits the layout is judged by."""
    edits = ["vqe/models/stage_b.py", "vqe/models/tecogan.py", "vqe/models/stage_a.py", "vqe/reporting/figures.py",
             "vqe/metrics/temporal.py", "vqe/train/baseline.py", "vqe/evaluation/report.py", "vqe/data/codec.py"]
    return {e: sorted(invalidated(e)) for e in edits}


def test_editing_stage_b_retrains_no_synthesis_stage_a_baseline_or_scaling_stage():
    hit = invalidated("vqe/models/stage_b.py")
    assert not {"synthesise", "train_stage_a", "train_baseline", "scaling_run", "ablation_stage_a",
                "evaluate_baseline"} & _family(hit), sorted(hit)
    assert {"evaluate@stage_a", "evaluate@stage_a_release", "evaluate@nogan_fast_release"}.isdisjoint(hit)
    assert {"train_stage_b", "train_nogan", "evaluate@gan_evh", "evaluate@gan_evh_release"} <= hit


def test_editing_tecogan_touches_none_of_our_models_stages():
    hit = invalidated("vqe/models/tecogan.py")
    ours = {n for n in pipeline() if n.split("@")[0] in OUR_TRAINING | {"evaluate", "evaluate_adapt", "ablation",
                                                                          "ablation_stage_a", "scaling_run"}}
    assert not hit & ours, sorted(hit & ours)
    rows = [r for r, arch in load_params(ROOT / "params.yaml").baselines.rows.items() if arch == "tecogan"]
    assert {f"train_baseline@{r}" for r in rows} <= hit
    assert not {f"train_baseline@{r}" for r, a in load_params(ROOT / "params.yaml").baselines.rows.items()
                if a != "tecogan"} & hit


@pytest.mark.parametrize("edited", ["vqe/reporting/figures.py", "vqe/metrics/temporal.py"])
def test_figures_and_temporal_metrics_retrain_nothing(edited):
    training = {"synthesise", "train_baseline", "scaling_run", "ablation_stage_a", "ablation", "resilience"} | OUR_TRAINING
    assert not training & _family(invalidated(edited)), sorted(invalidated(edited))


def test_every_stage_depends_on_the_architecture_files_it_builds():
    """The registry imports an architecture by name: a stage that trains or scores a model lists its file."""
    stages = pipeline()
    params = load_params(ROOT / "params.yaml")
    expect = {f"{stage}": ARCHS[spec.arch].file for stage, spec in
              [("train_stage_a", TRAINED["stage_a"]), ("train_stage_b", TRAINED["stage_b"]),
               ("train_nogan", TRAINED["nogan"]), ("train_nogan_fast", TRAINED["nogan_fast"])]}
    for row, arch in params.baselines.rows.items():
        expect[f"train_baseline@{row}"] = expect[f"evaluate_baseline@{row}"] = ARCHS[arch].file
    for row in ("stage_a", "stage_a_release"):
        expect[f"evaluate@{row}"] = ARCHS["stage_a"].file
    for row in ("gan_evh", "nogan", "gan_evh_release"):
        expect[f"evaluate@{row}"] = ARCHS["generator"].file
    for row in ("nogan_fast", "nogan_fast_release"):
        expect[f"evaluate@{row}"] = ARCHS["fast"].file
    missing = {s: f for s, f in expect.items() if f not in stages[s][0]}
    assert not missing


def test_an_architecture_dependency_brings_its_own_imports():
    """Each `vqe/models/<arch>.py` a stage depends on has its import closure in the stage's deps too."""
    import test_params_usage as usage

    def closure(module: str) -> set[str]:
        todo, seen = [module], set()
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += usage.imported_modules(m)
        return seen

    modules = usage._modules()
    for name, (deps, _) in pipeline().items():
        for dep in deps:
            if dep in {spec.file for spec in ARCHS.values()}:
                need = {modules[m].relative_to(ROOT).as_posix() for m in closure(dep[:-3].replace("/", "."))}
                missing = [f for f in need if not any(_covers(d, f) for d in deps)]
                assert not missing, f"{name}: {dep} imports {missing}, not in its deps"


def test_a_plot_or_one_baseline_re_runs_a_few_stages_not_the_pipeline():
    t = table()
    everything = len(pipeline())
    assert len(t["vqe/reporting/figures.py"]) < everything / 4
    assert len(t["vqe/models/tecogan.py"]) < everything / 4
