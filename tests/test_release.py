"""Released weights: recipes checked, a resumable run on the smoke data, and a card that matches its file."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, _composed, profile_params

from vqe.cli import main
from vqe.config import with_overrides
from vqe.evaluation.evaluate import release_path
from vqe.evaluation.report import display_name
from vqe.release import (
    ReleasePaths,
    hardware,
    load_release,
    model_card,
    release_params,
    train_release,
    write_card,
)
from vqe.util.errors import VQEError
from vqe.util.fetch import sha256sum

RELEASES = sorted(p.stem for p in (ROOT / "conf" / "release").glob("*.yaml"))


@pytest.mark.parametrize("name", RELEASES)
def test_every_shipped_release_applies_to_the_default_profile(name):
    release = load_release(name, ROOT / "conf" / "release")
    params = with_overrides(profile_params("tiny"), release.overrides, f"conf/release/{name}.yaml")
    assert params.validate()
    if release.phase == "stage_a":  # the longer run is longer than the profile's own
        assert params.stage_a.train.iters > profile_params("tiny").stage_a.train.iters


@pytest.mark.parametrize("name", RELEASES)
def test_every_committed_release_has_a_card_naming_its_file_and_recipe(name):
    """What a fresh clone carries: the weights, and a card whose sha256 and overrides are those of the files."""
    model, card = ROOT / "models" / "release" / f"{name}.pt", ROOT / "models" / "release" / f"{name}.md"
    assert model.is_file() and card.is_file()
    text = card.read_text()
    assert f"sha256 `{sha256sum(model)}`" in text
    for override in load_release(name, ROOT / "conf" / "release").overrides:
        assert f"`{override}`" in text
    assert sum(p.stat().st_size for p in model.parent.glob("*.pt")) <= 20e6  # the budget


def _write(folder: Path, name: str, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return folder


@pytest.mark.parametrize("data, message", [
    ({"phase": "stage_c", "summary": "x"}, "phase must be one of"),
    ({"phase": "stage_b", "summary": "x"}, "needs stage_a"),
    ({"phase": "stage_a"}, "missing key 'summary'"),
    ({"phase": "stage_a", "summary": "x", "iters": 5}, "unknown key"),
    ({"phase": "stage_a", "summary": "x", "overrides": ["stage_a.train.iters"]}, "key=value"),
    ({"phase": "stage_a", "summary": "x", "psnr_floor": -0.1}, "psnr_floor applies to a nogan_fast"),
    ({"phase": "nogan_fast", "summary": "x", "psnr_floor": "low"}, "psnr_floor must be a number"),
])
def test_bad_release_recipes_name_the_file(tmp_path, data, message):
    conf = _write(tmp_path, "bad", data)
    with pytest.raises(VQEError, match=message) as e:
        load_release("bad", conf)
    assert "bad.yaml" in str(e.value)
    with pytest.raises(VQEError, match=r"no release named 'nope' \(have bad\)"):
        load_release("nope", conf)


def test_release_rows_map_to_the_release_folder():
    assert release_path("stage_a_release") == Path("models/release/stage_a.pt")
    assert release_path("stage_a") is None
    assert display_name("gan_evh_release").endswith("released weights")
    assert display_name("gan_evh_release").startswith(display_name("gan_evh"))
    assert display_name("gan_evh_release_adapt") == display_name("gan_evh_release") + " + adapt"


@pytest.fixture
def smoke_release(tmp_path, smoke_manifest):
    """A 4-iteration Stage A release on the smoke data, validated at iterations 2 and 4."""
    data = copy.deepcopy(_composed("smoke"))
    data["synth"]["out_dir"] = str(smoke_manifest.root)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(data))
    conf = _write(tmp_path / "conf", "tiny_a", {
        "phase": "stage_a", "summary": "A test release.",
        "overrides": ["stage_a.train.iters=4", "stage_a.train.val_every=2", "stage_a.train.ckpt_every=2"]})
    release = load_release("tiny_a", conf)
    paths = ReleasePaths.of("tiny_a", tmp_path / "release", tmp_path / "runs")
    return release, params_file, paths


def test_a_release_trains_resumes_and_its_card_describes_the_file(smoke_release):
    release, params_file, paths = smoke_release
    summary = train_release(release, params_file, paths, progress=False)
    assert summary["iterations"] == 4 and summary["resumed_from"] == 0
    first = torch.load(paths.model, map_location="cpu", weights_only=False)["state_dict"]
    again = train_release(release, params_file, paths, progress=False)  # finished: nothing left to train
    assert again["resumed_from"] == 4 and again["iterations"] == 4
    state = torch.load(paths.model, map_location="cpu", weights_only=False)
    assert state["arch"] == "stage_a"
    assert all(torch.equal(first[k], v) for k, v in state["state_dict"].items())  # exported again, not retrained

    data_json = paths.run_dir.parent / "data.json"  # written when the run started
    recorded = data_json.read_text()
    data_json.write_text(recorded.replace('"manifest_sha256": "', '"manifest_sha256": "0'))
    with pytest.raises(VQEError, match="started on other data"):
        train_release(release, params_file, paths, progress=False)
    data_json.write_text(recorded)

    params = release_params(release, params_file)
    card = write_card(release, params, paths, "vqe release tiny_a").read_text()
    assert f"sha256 `{sha256sum(paths.model)}`" in card
    assert "vqe release tiny_a" in card and "`stage_a.train.iters=4`" in card
    assert "4 iterations" in card and "iters: 4" in card  # the params block is the trained section
    # The second session ran nothing: its speed is the run's over all sessions, never "nan".
    seconds = torch.load(paths.model, map_location="cpu", weights_only=False)["meta"]["train"]["seconds"]
    assert f"4 iterations ({4 / seconds:.2f} it/s over all its sessions;" in card and "nan" not in card
    # Every session that trained (not the one refused for its data) is on the card with its host.
    sessions = json.loads((paths.run_dir.parent / "sessions.json").read_text())
    assert [s["resumed_at"] for s in sessions] == [0, 4]
    assert f"{hardware()} (from the start); {hardware()} (from iteration 4 of its newest phase)" in card
    (paths.run_dir.parent / "sessions.json").unlink()  # a run from before the record: said so, not guessed
    assert "hardware: not recorded by this run" in write_card(release, params, paths, "vqe").read_text()
    rows = [line for line in card.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" | ")[0] for r in rows] == ["| 2", "| 4"]
    cells = rows[-1].strip("| ").split(" | ")
    assert all(c not in ("–", "") for c in cells)  # val and test-span columns are all filled for Stage A


def test_a_release_resumes_on_data_synthesised_again_only_when_told(smoke_release, smoke_manifest, tmp_path):
    """Data synthesised again from the same recipe can differ in its bytes (another host): --data-rebuilt
    resumes the run from its checkpoint (not from scratch), records the switch, and the card says so."""
    import shutil

    release, params_file, paths = smoke_release
    data_dir = shutil.copytree(smoke_manifest.root, tmp_path / "synth_copy")
    params_file.write_text(params_file.read_text().replace(str(smoke_manifest.root), str(data_dir)))
    first = train_release(release, params_file, paths, progress=False)
    weights = torch.load(paths.model, map_location="cpu", weights_only=False)["state_dict"]
    manifest = data_dir / "manifest.json"
    manifest.write_text(manifest.read_text() + "\n")  # same clips, other bytes

    with pytest.raises(VQEError, match="--data-rebuilt"):
        train_release(release, params_file, paths, progress=False)
    again = train_release(release, params_file, paths, progress=False, data_rebuilt=True)
    assert first["resumed_from"] == 0 and again["resumed_from"] == 4  # the checkpoint was kept
    state = torch.load(paths.model, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(weights[k], v) for k, v in state.items())
    data_json = paths.run_dir.parent / "data.json"
    recorded = json.loads(data_json.read_text())
    assert [r["resumed_at"] for r in recorded["rebuilds"]] == [4]
    assert recorded["rebuilds"][0]["manifest_sha256"] == sha256sum(manifest) != recorded["manifest_sha256"]
    assert train_release(release, params_file, paths, progress=False)["resumed_from"] == 4  # now the run's data
    card = write_card(release, release_params(release, params_file), paths, "vqe release tiny_a").read_text()
    assert "synthesised again from the same recipe" in card and sha256sum(manifest) in card

    manifest.write_text(manifest.read_text()[:-1])  # back to the bytes the run started on: no flag, recorded
    assert train_release(release, params_file, paths, progress=False)["resumed_from"] == 4
    recorded = json.loads(data_json.read_text())
    assert [r["resumed_at"] for r in recorded["rebuilds"]] == [4, 4]
    assert recorded["rebuilds"][-1]["manifest_sha256"] == sha256sum(manifest) == recorded["manifest_sha256"]
    card = write_card(release, release_params(release, params_file), paths, "vqe release tiny_a").read_text()
    assert "byte for byte the data the run started on" in card

    recorded["train"]["bikes_other"] = 1  # another clip set is another recipe, even when told
    data_json.write_text(json.dumps(recorded))
    manifest.write_text(manifest.read_text() + "\n")
    with pytest.raises(VQEError, match="not the same recipe"):
        train_release(release, params_file, paths, progress=False, data_rebuilt=True)


@pytest.mark.parametrize("phase", ["stage_b", "nogan_fast"])
def test_releases_of_the_other_phases_have_cards_with_their_curves(phase, smoke_release, stage_a_path):
    """Stage B starts from a named Stage A; NoGAN's curve is one table over its phases (critic left out)."""
    _, params_file, paths = smoke_release
    recipe = {"phase": phase, "summary": f"A {phase} test release."}
    if phase == "stage_b":
        recipe["stage_a"] = str(stage_a_path)
    release = load_release(phase, _write(params_file.parent / "conf_b", phase, recipe))
    train_release(release, params_file, paths, progress=False)
    card = write_card(release, release_params(release, params_file), paths, f"vqe release {phase}").read_text()
    assert f"sha256 `{sha256sum(paths.model)}`" in card and f"{phase}:" in card  # the params block
    rows = [line for line in card.splitlines() if line.startswith("| ") and "|---" not in line][1:]
    if phase == "stage_b":  # smoke: 4 iterations, validated every 2
        assert f"starts from `{stage_a_path}`" in card and "Stage B parameters (the frozen" in card
        assert [r.split(" | ")[0] for r in rows] == ["| 2", "| 4"]
        assert "EMA" not in card  # smoke's stage_b.train.ema is 0: raw weights
    else:
        phases = [r.split(" | ")[0] for r in rows]
        assert phases[0] == "| pretrain" and phases[-1] == "| handoff_1" and "| critic_1" not in phases
        assert "pretrain 4 iterations" in card and "best validation LPIPS" in card
        summary = torch.load(paths.model, map_location="cpu", weights_only=False)["meta"]["train"]
        assert f"{sum(summary['seconds'].values()) / 3600:.2f} h wall" in card  # NoGAN's seconds are per phase
    assert all(r.split(" | ")[-3] != "–" for r in rows)  # val columns filled; no test span outside Stage A


@pytest.mark.parametrize("handoff_gain, pretrain_gain, chosen", [
    (-0.30, +0.01, "pretrain"),  # the hand-off's pick breaks the floor, its starting point does not
    (-0.05, +0.01, "handoff"),  # within the floor: seed 003's rule stands
    (-0.30, -0.20, "handoff"),  # neither meets it: nothing better to fall back on
])
def test_a_psnr_floor_falls_back_to_the_pretrained_generator(handoff_gain, pretrain_gain, chosen, smoke_release):
    """`psnr_floor` bounds NoGAN's best-LPIPS pick: the pre-trained generator is exported when only it keeps
    the floor, with its weights from the pre-training checkpoint, and the card says which and why."""
    from vqe.release import _floor_pick

    _, params_file, paths = smoke_release
    recipe = {"phase": "nogan_fast", "summary": "A floored release.", "psnr_floor": -1000}
    release = load_release("floored", _write(params_file.parent / "conf_f", "floored", recipe))
    assert release.psnr_floor == -1000
    params = release_params(release, params_file)
    summary = train_release(release, params_file, paths, progress=False)  # smoke's real run: applies the floor
    assert summary["selection"] == {"psnr_floor": -1000, "chosen": "handoff", "handoff_val": summary["val"],
                                    "pretrain_val": summary["val_pretrain"]}
    handoff_weights = torch.load(paths.model, map_location="cpu", weights_only=False)["state_dict"]
    crafted = {**summary, "val": {"psnr_gain": handoff_gain, "lpips_gain": -0.2},
               "val_pretrain": {"psnr_gain": pretrain_gain, "lpips_gain": -0.1}}
    picked = _floor_pick(-0.1, params, paths, crafted)
    assert picked["selection"]["chosen"] == chosen
    state = torch.load(paths.model, map_location="cpu", weights_only=False)
    assert state["meta"]["train"]["selection"]["chosen"] == chosen
    modules = torch.load(paths.run_dir / "pretrain" / "last.pt", map_location="cpu", weights_only=False)["modules"]
    expected = modules["generator"] if chosen == "pretrain" else handoff_weights
    assert "ema" not in modules  # smoke keeps no EMA: the pre-trained generator is the raw one
    assert all(torch.equal(expected[k], v) for k, v in state["state_dict"].items())
    assert any(not torch.equal(modules["generator"][k], v) for k, v in handoff_weights.items())  # they differ
    card = model_card(release, params, paths, "vqe release floored")
    if chosen == "pretrain":
        assert "the pre-trained generator, not the hand-off's pick" in card and "-0.300 dB" in card
    else:
        assert "best validation LPIPS" in card
        assert ("did not meet it either" in card) == (pretrain_gain < -0.1)  # a floor missed is said, not hidden


def test_card_only_needs_an_exported_release(tmp_path, capsys):
    conf = _write(tmp_path / "conf", "x", {"phase": "stage_a", "summary": "s"})
    argv = ["release", "x", "--conf", str(conf), "--models-dir", str(tmp_path / "m"), "--card-only"]
    assert main(argv) == 2
    assert "no exported release" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_the_card_names_the_command_that_trains_the_release_again():
    from vqe.cli import _release_command, parse_args

    args = parse_args(["release", "stage_a", "--threads", "1", "--no-progress", "--note", "busy host", "--card-only"])
    assert _release_command(args) == "vqe release stage_a --threads 1 --no-progress"
    assert _release_command(parse_args(["release", "gan_evh", "--runs-dir", "my runs"])) == \
        "vqe release gan_evh --runs-dir 'my runs'"
