"""Wall time of every pipeline stage of the last `dvc repro`, read from the executed notebooks
(papermill records each one's duration) -> results/benchmarks/stage_times.json, a figure
(results/figures/stage_times.png: every stage, coloured by its part of the pipeline) and a table on stdout.

Run after `dvc repro`:  python benchmarks/stage_times.py
"""

from __future__ import annotations

import re
from pathlib import Path

from vqe.reporting.headline import stage_seconds
from vqe.util.atomic import atomic_path, write_json

# Parts of the pipeline, by executed notebook name (numbered as the notebooks are); the first match wins.
GROUPS = (
    ("synthesis", r"^01_"),
    ("non-learned rows", r"^01b_"),
    ("Table 1 baselines: training", r"^12_train_baseline_"),
    ("Table 1 baselines: scoring", None),  # 02b_evaluate_<row> for a row of `baselines.rows`
    ("our models: training", r"^0[234]_"),
    ("our models: scoring", r"^02b_"),
    ("ablations", r"^05"),
    ("codec, resilience, generalisation", r"^08"),
    ("scaling", r"^11"),
    ("tables, figures, BD-rate", r"^(06|07|09|10)_"),
)


def group_of(stage: str, baseline_rows: set[str]) -> str:
    """The part of the pipeline an executed notebook belongs to (`GROUPS`; "other" if none)."""
    if stage.startswith("02b_evaluate_") and stage[len("02b_evaluate_"):] in baseline_rows:
        return "Table 1 baselines: scoring"
    for name, pattern in GROUPS:
        if pattern is not None and re.search(pattern, stage):
            return name
    return "other"


def group_minutes(times: dict[str, float], baseline_rows: set[str]) -> dict[str, float]:
    """Minutes per part of the pipeline, in `GROUPS` order (parts with no stage left out)."""
    sums: dict[str, float] = {}
    for stage, s in times.items():
        g = group_of(stage, baseline_rows)
        sums[g] = sums.get(g, 0.0) + s / 60
    order = [name for name, _ in GROUPS] + ["other"]
    return {g: sums[g] for g in order if g in sums}


def figure(times: dict[str, float], baseline_rows: set[str], host: str, path: str | Path) -> None:
    """Every stage's minutes as a horizontal bar, coloured by its part of the pipeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_minutes(times, baseline_rows)
    colours = dict(zip(groups, plt.get_cmap("tab10").colors))
    stages = list(times)
    fig, ax = plt.subplots(figsize=(8, 0.2 * len(stages) + 1.5))
    ax.barh(range(len(stages)), [times[s] / 60 for s in stages],
            color=[colours[group_of(s, baseline_rows)] for s in stages])
    ax.set_yticks(range(len(stages)), stages, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("minutes")
    ax.set_title(f"dvc repro: {sum(times.values()) / 60:.1f} min in the stages, each as last executed ({host})",
                 fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[g]) for g in groups]
    # centre right: beside the short ablation bars
    ax.legend(handles, [f"{g}: {m:.1f} min" for g, m in groups.items()], fontsize=7, loc="center right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> None:
    import torch

    from vqe.config import load_params
    from vqe.release import hardware

    times = stage_seconds(Path("results/notebooks"))
    rows = set(load_params("params.yaml").baselines.rows)
    # Each notebook records the time of the run that last executed it: after a full `dvc repro` on one host that
    # is this host's run, after partial runs it mixes hosts. Say which host read them, not which ran them.
    host = f"read on {hardware()}, {torch.get_num_threads()} threads"
    groups = group_minutes(times, rows)
    write_json("results/benchmarks/stage_times.json", {
        "host": host, "note": "papermill durations of results/notebooks: each stage as last executed",
        "seconds": times, "group_minutes": groups, "total_minutes": sum(times.values()) / 60})
    figure(times, rows, host, "results/figures/stage_times.png")
    for name, s in times.items():
        print(f"{name:45s} {s / 60:6.1f} min")
    for name, m in groups.items():
        print(f"{'= ' + name:45s} {m:6.1f} min")
    print(f"{'total':45s} {sum(times.values()) / 60:6.1f} min  ({host})")


if __name__ == "__main__":
    main()
