"""The GPU check's CPU dry run: `benchmarks/gpu_check.sh` runs every step (CUDA tests collected and skipped, the
bench, the training rate) at toy sizes and leaves their results where the real run would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.platform != "linux", reason="bash script")
def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    log = (tmp_path / "gpu_check.log").read_text()
    for part in ("1/3 CUDA-only tests", "2/3 vqe bench on cpu", "3/3 Stage A training rate on cpu", "done in"):
        assert part in log
    suite = ET.parse(tmp_path / "cuda_tests.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) >= 4 and int(suite.get("skipped")) == int(suite.get("tests"))  # no GPU here
    bench = json.loads((tmp_path / "bench_cpu.json").read_text())
    assert bench["models"][0]["model"].endswith("nogan_fast.pt") and bench["models"][0]["cases"][0]["fps"] > 0
    assert (tmp_path / "bench_cpu.png").is_file() and (tmp_path / "bench_cpu.md").is_file()
    rate = json.loads((tmp_path / "train_rate.json").read_text())
    assert rate["profile"] == "smoke" and rate["iterations"] >= 1 and rate["batch"] == 2
    assert rate["full_run_hours"] == pytest.approx(rate["profile_iters"] / rate["it_per_s"] / 3600)
