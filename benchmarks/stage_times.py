"""Wall time of every pipeline stage of the last `dvc repro`, read from the executed notebooks
(papermill records each one's duration) -> results/benchmarks/stage_times.json and a table on stdout.

Run after `dvc repro`:  python benchmarks/stage_times.py
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from vqe.atomic import write_json


def stage_seconds(folder: Path = Path("results/notebooks")) -> dict[str, float]:
    """{executed notebook name: seconds}, in pipeline order (the notebooks' numbering)."""
    times = {}
    for path in sorted(folder.glob("*.ipynb")):
        meta = json.loads(path.read_text())["metadata"].get("papermill", {})
        if meta.get("duration") is not None:
            times[path.stem] = float(meta["duration"])
    return times


def main() -> None:
    import torch

    times = stage_seconds()
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"
    write_json("results/benchmarks/stage_times.json", {"host": host, "seconds": times,
                                                        "total_minutes": sum(times.values()) / 60})
    for name, s in times.items():
        print(f"{name:45s} {s / 60:6.1f} min")
    print(f"{'total':45s} {sum(times.values()) / 60:6.1f} min  ({host})")


if __name__ == "__main__":
    main()
