"""Released weights: longer, resumable training runs of the main models, committed with a model card.

A release is a file `conf/release/<name>.yaml`: the training phase, the dotlist overrides of the profile's
params that make the longer run, and (for Stage B) the released Stage A it starts from. `vqe release
<name>` trains it through the usual phase trainer — same loop, same checkpoints, so a killed run resumes
where it stopped — and then writes `models/release/<name>.pt` and its card `models/release/<name>.md`:
the exact command and params, the data, iterations, wall time, hardware, sha256 and the validation curve.

Stage A runs also log the test span of the scaling study at every validation. That curve is reported in
the card and never used: the exported weights are the run's last (EMA) weights, whatever the curves say
(NoGAN's hand-off alone keeps its generator of best validation LPIPS: seed 003's rule). A NoGAN release may
bound that rule with `psnr_floor`: when the hand-off's pick loses more validation PSNR than the floor allows and
the pre-trained generator it started from does not, the pre-trained generator is exported instead (`_floor_pick`).
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from vqe.config import Params, load_params
from vqe.data.manifest import Manifest
from vqe.models.build import load_model
from vqe.studies.scaling import read_curve
from vqe.train.core.loop import export
from vqe.train.core.validate import test_span_scores
from vqe.train.nogan import train_nogan_fast
from vqe.train.stage_a import train_stage_a
from vqe.train.stage_b import train_stage_b
from vqe.util.atomic import write_json, write_text
from vqe.util.errors import VQEError
from vqe.util.fetch import sha256sum

PHASES = ("stage_a", "stage_b", "nogan_fast")


@dataclass
class Release:
    name: str
    phase: str  # one of PHASES
    summary: str  # one line for the card
    overrides: list[str] = field(default_factory=list)
    stage_a: Optional[str] = None  # stage_b: the released Stage A it starts from
    psnr_floor: Optional[float] = None  # nogan_fast: least validation ΔPSNR (dB) the exported generator may have

    def validate(self, origin: str) -> None:
        if self.phase not in PHASES:
            raise VQEError(f"{origin}: phase must be one of {', '.join(PHASES)}, got {self.phase!r}")
        if self.phase == "stage_b" and not self.stage_a:
            raise VQEError(f"{origin}: a stage_b release needs stage_a: <path of the released Stage A>")
        if not all(isinstance(o, str) and "=" in o for o in self.overrides):
            raise VQEError(f"{origin}: overrides must be a list of key=value strings, got {self.overrides!r}")
        if self.psnr_floor is not None:
            if self.phase != "nogan_fast":
                raise VQEError(f"{origin}: psnr_floor applies to a nogan_fast release (its hand-off), not {self.phase}")
            if isinstance(self.psnr_floor, bool) or not isinstance(self.psnr_floor, (int, float)):
                raise VQEError(f"{origin}: psnr_floor must be a number of dB (e.g. -0.1), got {self.psnr_floor!r}")


def load_release(name: str, conf_dir: str | Path = "conf/release") -> Release:
    """The release recipe `<conf_dir>/<name>.yaml`, checked (errors name the file and key)."""
    path = Path(conf_dir) / f"{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in Path(conf_dir).glob("*.yaml"))
        raise VQEError(f"{path}: no release named {name!r} (have {', '.join(have) or 'none'})")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"phase", "summary", "overrides", "stage_a", "psnr_floor"}
    if unknown:
        raise VQEError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("phase", "summary"):
        if key not in data:
            raise VQEError(f"{path}: missing key {key!r}")
    release = Release(name=name, phase=data["phase"], summary=str(data["summary"]),
                      overrides=list(data.get("overrides") or []), stage_a=data.get("stage_a"),
                      psnr_floor=data.get("psnr_floor"))
    release.validate(str(path))
    return release


@dataclass
class ReleasePaths:
    model: Path
    card: Path
    run_dir: Path  # checkpoints (resume from here)
    live_dir: Path  # dvclive logs: the curves of the card

    @classmethod
    def of(cls, name: str, models_dir: str | Path = "models/release", runs_dir: str | Path = "checkpoints/release"
           ) -> "ReleasePaths":
        run = Path(runs_dir) / name
        return cls(Path(models_dir) / f"{name}.pt", Path(models_dir) / f"{name}.md", run / "checkpoint", run / "live")


def release_params(release: Release, params_file: str | Path = "params.yaml") -> Params:
    return load_params(params_file, release.overrides)


def train_release(release: Release, params_file: str | Path = "params.yaml", paths: Optional[ReleasePaths] = None,
                  progress: bool = True, data_rebuilt: bool = False) -> dict[str, Any]:
    """Train (or resume) the release and export its weights; returns the training summary.
    `data_rebuilt`: resume although data/synth was synthesised again since the run started (see `_record_data`)."""
    paths = paths or ReleasePaths.of(release.name)
    params = release_params(release, params_file)
    data = _record_data(params, paths.run_dir.parent / "data.json", rebuilt=data_rebuilt)
    _record_session(paths.run_dir)
    return _train_phase(release, params, paths, progress, data["manifest_sha256"])


def _train_phase(release: Release, params: Params, paths: ReleasePaths, progress: bool, data_sha256: str
                 ) -> dict[str, Any]:
    """Train the release's phase; the checkpoints name the data by `data_sha256`, the manifest the run started on
    (a run resumed with --data-rebuilt keeps it, as data.json and the card record)."""
    common = dict(model_path=paths.model, run_dir=paths.run_dir, live_dir=paths.live_dir, summary_path=None,
                  progress=progress, data_sha256=data_sha256)
    if release.phase == "stage_a":

        return train_stage_a(params, extra_scores=test_span_scores(params), **common)
    if release.phase == "stage_b":
        if not Path(release.stage_a).is_file():
            raise VQEError(f"{release.stage_a}: the released Stage A this release starts from is missing "
                           f"(stage_a: in conf/release/{release.name}.yaml); train it first")
        return train_stage_b(params, stage_a_path=release.stage_a, **common)
    summary = train_nogan_fast(params, **common)
    return summary if release.psnr_floor is None else _floor_pick(release.psnr_floor, params, paths, summary)


def _floor_pick(floor: float, params: Params, paths: ReleasePaths, summary: dict[str, Any]) -> dict[str, Any]:
    """Seed 003's hand-off keeps the generator of best validation LPIPS, whatever it costs in PSNR. With a
    floor, that pick stands only if its validation ΔPSNR is at least `floor` dB; otherwise the pre-trained
    generator (the hand-off's starting point: the EMA weights when the run keeps one) is exported, provided
    it meets the floor itself. Both candidates were scored by the same validator during training; the
    choice and both scores are written into the exported file's summary (and so into the card)."""

    handoff, pretrain = summary["val"], summary["val_pretrain"]
    chosen = "pretrain" if handoff["psnr_gain"] < floor <= pretrain["psnr_gain"] else "handoff"
    summary = {**summary, "selection": {"psnr_floor": floor, "chosen": chosen, "handoff_val": handoff,
                                        "pretrain_val": pretrain}}
    gen = load_model(paths.model).to(memory_format=torch.contiguous_format)
    if chosen == "pretrain":
        modules = torch.load(paths.run_dir / "pretrain" / "last.pt", map_location="cpu",
                             weights_only=False)["modules"]
        if "ema" in modules:  # AveragedModel: the network's keys under `module.`, plus its counter
            weights = {k[len("module."):]: v for k, v in modules["ema"].items() if k.startswith("module.")}
        else:
            weights = modules["generator"]
        gen.load_state_dict(weights)
        summary["val"] = pretrain
    export(paths.model, gen, summary, None, profile=params.profile_name)
    return summary


def _record_data(params: Params, path: Path, rebuilt: bool = False) -> dict[str, Any]:
    """What the run trains on, written when it starts (the card describes this, even if data/synth has
    been rebuilt since); a resumed run on other data is an error.

    `rebuilt` lets a run resume on data synthesised again from the same recipe (same clips, same frame
    counts) whose bytes differ, as they did between two hosts of the same name here (the float kernels of
    torch and numpy depend on the CPU's SIMD level). The switch is recorded, and the card says so. Data
    byte-identical to what the run has already trained on (the original or a recorded rebuild) needs no flag;
    the switch back is recorded all the same."""

    manifest = Manifest.load(params.synth.out_dir)
    data = {"out_dir": params.synth.out_dir, "profile": params.profile_name,
            "manifest_sha256": sha256sum(Path(params.synth.out_dir) / "manifest.json"),
            "train": {c.name: c.frames for c in manifest.clips if c.split == "train"},
            "val": [c.name for c in manifest.clips if c.split == "val"]}
    if not path.is_file():
        write_json(path, data)
        return data
    old = json.loads(path.read_text())
    known = [r["manifest_sha256"] for r in [old, *old.get("rebuilds", [])]]
    current = known[-1]
    if current == data["manifest_sha256"]:
        return old
    if data["manifest_sha256"] in known:  # back on bytes the run has trained on: no flag needed, but recorded
        rebuilt = True
    if not rebuilt:
        raise VQEError(f"{path}: this run started on other data (manifest {current[:12]}, now "
                       f"{data['manifest_sha256'][:12]}); restore that data, pass --data-rebuilt if it was only "
                       f"synthesised again from the same recipe (e.g. on another host), or delete {path.parent} "
                       "to start over")
    if (old["train"], old["val"]) != (data["train"], data["val"]):
        raise VQEError(f"{path}: --data-rebuilt, but the training or validation clips differ from the run's "
                       "(not the same recipe); delete the run to start over")
    resumed_at = _last_iteration(path.parent / "checkpoint")
    old.setdefault("rebuilds", []).append({"manifest_sha256": data["manifest_sha256"], "hardware": hardware(),
                                           "resumed_at": resumed_at})
    write_json(path, old)
    return old


def _last_iteration(run_dir: Path) -> Optional[int]:
    """The iteration of the newest checkpoint under `run_dir` (None if there is none)."""

    newest = max(run_dir.rglob("last.pt"), key=lambda p: p.stat().st_mtime, default=None)
    if newest is None:
        return None
    state = torch.load(newest, map_location="cpu", weights_only=False)
    return state.get("iteration")


def _record_session(run_dir: Path) -> None:
    """Append this session's host and starting iteration to the run's `sessions.json`: a run resumed on
    other machines is described by all of them, not by the one that happens to write its card."""

    path = run_dir.parent / "sessions.json"
    sessions = json.loads(path.read_text()) if path.is_file() else []
    sessions.append({"hardware": hardware(), "resumed_at": _last_iteration(run_dir) or 0})
    write_json(path, sessions)


def _hardware_line(run_dir: Path, train: dict[str, Any]) -> str:
    """The card's hardware line, from the run's session record (runs that predate it: said so)."""
    path = run_dir.parent / "sessions.json"
    threads = f"device `{train.get('device', '?')}`, {train.get('threads', '?')} threads in its last session"
    if not path.is_file():
        return f"- hardware: not recorded by this run ({path.name} predates it); {threads}"
    sessions = json.loads(path.read_text())
    hosts = "; ".join(f"{s['hardware']} (" + ("from the start" if not s["resumed_at"] else
                                               f"from iteration {s['resumed_at']} of its newest phase") + ")"
                      for s in sessions)
    return f"- hardware, per session of the run: {hosts}; {threads}"


def hardware() -> str:
    """What the run ran on, in words (CPU model and core count, or the CUDA device)."""

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} (CPU)"


def model_card(release: Release, params: Params, paths: ReleasePaths, command: str, note: str = "") -> str:
    """The model card of a finished (or interrupted and exported) release, from its files alone."""

    state = torch.load(paths.model, map_location="cpu", weights_only=False)
    train = state.get("meta", {}).get("train", {})
    data = json.loads((paths.run_dir.parent / "data.json").read_text())
    curve = release_curve(paths.live_dir, train)
    phased = any(phase for phase, _ in curve)
    lines = [
        f"# Released weights: `{release.name}`", "", release.summary, "",
        "## Reproduce", "",
        "```bash", "make setup && .venv/bin/dvc repro synthesise   # the training data (profile "
        f"{params.profile_name})", command, "```", "",
        "A killed run resumes from its last checkpoint when the same command is run again.", "",
        "## File", "",
        f"- `{paths.model.as_posix()}`: {paths.model.stat().st_size / 1e6:.2f} MB, "
        f"sha256 `{sha256sum(paths.model)}`",
        f"- architecture `{state['arch']}`, {_parameters(train)}, up-scaling "
        f"×{state.get('scale')}; {_which_weights(release, params, train)}",
        "",
        "## Training", "",
        f"- profile `{params.profile_name}` with the overrides of `conf/release/{release.name}.yaml`: "
        + (", ".join(f"`{o}`" for o in release.overrides) or "none"),
        *([f"- starts from `{release.stage_a}`"] if release.stage_a else []),
        f"- {_iterations(train)}, {_seconds(train) / 3600:.2f} h wall",
        _hardware_line(paths.run_dir, train),
        f"- data: `{data['out_dir']}` of profile `{data['profile']}` (manifest sha256 `{data['manifest_sha256']}`), "
        f"{len(data['train'])} training clips, {sum(data['train'].values())} frames; validation on the val split "
        f"({', '.join(data['val'])})",
        *[_rebuild_line(r, data["manifest_sha256"]) for r in data.get("rebuilds", [])],
        *([f"- {note}"] if note else []),
        "", "Params of the trained section:", "", "```yaml",
        yaml.safe_dump({release.phase: _as_dict(getattr(params, release.phase))}, sort_keys=False).rstrip(), "```", "",
        "## Validation curve", "",
        "Gains over the bicubic input row (dB for PSNR; LPIPS: negative is better). `val`: the val split; "
        "`test span`: the scaling study's span of the test clip (reported only, never used to choose anything).", "",
        *(["Each phase of the run counts its iterations and seconds from its own start.", ""] if phased else []),
        ("| phase " if phased else "") + "| iteration | seconds | val ΔPSNR | val ΔLPIPS | test span ΔPSNR "
        "| test span ΔLPIPS |",
        ("|---" if phased else "") + "|---|---|---|---|---|---|",
        *((f"| {phase} " if phased else "") + f"| {p['iteration']} | {p['seconds']:.0f} | {_f(p, 'psnr_gain', 3)} | "
          f"{_f(p, 'lpips_gain', 4)} | {_f(p, 'test_psnr_gain', 3)} | {_f(p, 'test_lpips_gain', 4)} |"
          for phase, p in curve),
        "", "Table 1 scores these weights as the row "
        f"`{release.name}_release` (`results/table1.md`, `dvc repro`).", ""]
    return "\n".join(lines)


def _rebuild_line(rebuild: dict[str, Any], original_sha256: str) -> str:
    """One line of the card per switch of data recorded in data.json (`_record_data`)."""
    where = f"the run resumed on it at iteration {rebuild['resumed_at']} of its newest phase"
    if rebuild["manifest_sha256"] == original_sha256:
        return (f"- data synthesised again on {rebuild['hardware']}, byte for byte the data the run started on "
                f"(manifest sha256 `{original_sha256}`); {where}")
    return (f"- data synthesised again from the same recipe on {rebuild['hardware']} (manifest sha256 "
            f"`{rebuild['manifest_sha256']}`: the same clips and frame counts, other bytes); {where}")


def release_curve(live_dir: Path, train: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """(phase, point) for every validation the run logged. One-phase runs log into `live_dir` itself
    (phase ""); NoGAN logs each phase into a sub-folder (pretrain, critic_1, handoff_1, ...), taken in the
    order the training summary lists them; phases without validations (the critic's) are left out."""

    required = ("seconds", "psnr_gain", "lpips_gain")
    if (live_dir / "plots" / "metrics" / "val").is_dir():
        return [("", p) for p in read_curve(live_dir, required=required)]
    phases = [k for k in train if isinstance(train[k], dict) and (live_dir / k / "plots" / "metrics" / "val").is_dir()]
    if not phases:
        raise VQEError(f"{live_dir}: no validation logged (neither here nor in a phase folder)")
    return [(k, p) for k in phases for p in read_curve(live_dir / k, required=required)]


def _iterations(train: dict[str, Any]) -> str:
    """"3000 iterations (0.48 it/s ...)", or per phase for NoGAN's pretrain/critic/hand-off."""
    if "iterations" in train:
        return (f"{train['iterations']} iterations ({_rate(train)}; the last session resumed from iteration "
                f"{train.get('resumed_from', 0)})")
    phases = [(k, v) for k, v in train.items() if isinstance(v, dict) and "iterations" in v]
    return " + ".join(f"{k} {v['iterations']} iterations ({_rate(v)})" for k, v in phases) or "? iterations"


def _rate(phase: dict[str, Any]) -> str:
    """The speed of a run or phase in its last session; one that was already finished when the run resumed
    ran no iterations then, so its speed is taken over all its sessions (validation included) instead."""
    rate = phase.get("it_per_s", float("nan"))
    if math.isfinite(rate):
        return f"{rate:.2f} it/s in its last session"
    if phase.get("seconds"):
        return f"{phase['iterations'] / phase['seconds']:.2f} it/s over all its sessions"
    return "speed not recorded"


def _which_weights(release: Release, params: Params, train: dict[str, Any]) -> str:
    """Which weights were exported. Only NoGAN's hand-off picks a checkpoint (by validation LPIPS, seed
    003's rule); the other phases export their last iteration."""
    selection = train.get("selection")
    if release.phase == "nogan_fast" and selection and selection["chosen"] == "pretrain":
        h, p = selection["handoff_val"], selection["pretrain_val"]
        return (f"the weights are the pre-trained generator, not the hand-off's pick: that pick (best validation "
                f"LPIPS, seed 003's rule) scored {h['psnr_gain']:+.3f} dB / {h['lpips_gain']:+.4f} LPIPS on "
                f"validation, below the recipe's psnr_floor of {selection['psnr_floor']:+.2f} dB; the pre-trained "
                f"generator scored {p['psnr_gain']:+.3f} dB / {p['lpips_gain']:+.4f}")
    if release.phase == "nogan_fast":
        handoffs = [v for k, v in train.items() if k.startswith("handoff_") and isinstance(v, dict)]
        best = handoffs[-1].get("best_it") if handoffs else None
        line = ("the weights are the hand-off generator with the best validation LPIPS (seed 003's NoGAN rule"
                + (f": hand-off iteration {best})" if best is not None else ")"))
        if selection and selection["handoff_val"]["psnr_gain"] < selection["psnr_floor"]:
            line += (f"; it scored {selection['handoff_val']['psnr_gain']:+.3f} dB on validation, below the "
                     f"recipe's psnr_floor of {selection['psnr_floor']:+.2f} dB, and the pre-trained generator "
                     f"({selection['pretrain_val']['psnr_gain']:+.3f} dB) did not meet it either")
        return line
    ema = train.get("ema") if release.phase == "stage_a" else params.stage_b.train.ema > 0
    return (f"the weights are the {'EMA' if ema else 'raw'} weights at the last iteration (no checkpoint is "
            "picked from a curve)")


def _seconds(train: dict[str, Any]) -> float:
    """Training wall time; NoGAN records it per phase."""
    seconds = train.get("seconds", float("nan"))
    return sum(seconds.values()) if isinstance(seconds, dict) else seconds


def _parameters(train: dict[str, Any]) -> str:
    if "parameters" in train:
        return f"{train['parameters']} parameters"
    if "parameters_stage_b" in train:
        return f"{train['parameters_stage_b']} Stage B parameters (the frozen Stage A's not counted)"
    return "parameters unknown"


def write_card(release: Release, params: Params, paths: ReleasePaths, command: str, note: str = "") -> Path:
    write_text(paths.card, model_card(release, params, paths, command, note))
    return paths.card


def _f(point: dict[str, float], key: str, digits: int) -> str:
    return f"{point[key]:+.{digits}f}" if key in point else "–"


def _as_dict(section: Any) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(section), default=str))
