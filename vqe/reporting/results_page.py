"""`results/README.md`: every table and figure the pipeline wrote, with one line of reading each.

The readings are computed from the same files (which method is best on which metric, by how much),
never typed in, so the page cannot drift from the numbers; sections whose files a run did not
produce are left out. The paper's numbers appear only where labelled as the paper's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from vqe.evaluation.report import display_name, total_seconds
from vqe.studies.ablation import PAPER_DELTAS
from vqe.util.atomic import write_text

FIGURES = (  # file in results/figures, caption
    ("rd_curves.png", "Rate-distortion curves (PSNR, SSIM, LPIPS, VMAF against the actual bitrate) of every method."),
    ("comparison.png", "Fig. 2: one test frame of every method beside the ground truth, with a zoomed crop."),
    ("fig1_architecture.png", "Fig. 1: the generator as configured and trained (drawn from the model file)."),
    ("fig3_temporal_profile.png", "Fig. 3: temporal profiles (one pixel row over consecutive frames); ragged "
                                  "streaks are flicker."),
    ("fig4_frame_strip.png", "Fig. 4: consecutive frames (zoomed) of the input, our models and the ground truth."),
    ("perception_distortion.png", "The perception-distortion plane: RMSE against LPIPS, every method at every bitrate."),
    ("bitrate_equivalency_psnr.png", "Bitrate equivalency in PSNR: the H.264 bitrate at the method's PSNR."),
    ("bitrate_equivalency_lpips.png", "Bitrate equivalency in LPIPS."),
    ("bitrate_equivalency_vmaf.png", "Bitrate equivalency in VMAF."),
    ("fig5_ablations.png", "Fig. 5: each ablation against the full model at the same reduced budget (mean over "
                           "seeds, bars = spread; diamonds = the paper's reported changes)."),
    ("codec_generalisation.png", "Models trained on H.264 tested on H.265, VP9 and AV1 input (grey: on H.264)."),
    ("bitrate_resilience.png", "The fast restorer trained at one bitrate or at all, tested at every bitrate."),
    ("gan_vs_nogan.png", "Phase-2 GAN against NoGAN over wall-clock time, and the spread of the adversarial losses."),
    ("scaling.png", "Quality against compute: each Stage A recipe's gain over the input against its training "
                    "seconds (log axis), on the val split (solid) and the test span (dashed)."),
    ("train_stage_a.png", "Stage A training curves."),
    ("train_stage_b.png", "Phase-2 (GAN) training dynamics: loss terms, D(real)/D(fake), validation."),
    ("synthesis_samples.png", "The data: ground truth and decodes at the lowest and highest bitrate of every clip."),
)


def _load(path: Path) -> Optional[Any]:
    return json.loads(path.read_text()) if path.is_file() else None


def table1_reading(table: dict[str, dict[str, float]]) -> str:
    """Best PSNR and best LPIPS, and where the compressed input stands."""
    best_psnr = max(table, key=lambda m: table[m]["psnr"])
    best_lpips = min(table, key=lambda m: table[m]["lpips"])
    line = (f"Best PSNR: {display_name(best_psnr)} ({table[best_psnr]['psnr']:.2f} dB); "
            f"best LPIPS: {display_name(best_lpips)} ({table[best_lpips]['lpips']:.4f})")
    if "input" in table:
        line += f"; the compressed input has {table['input']['psnr']:.2f} dB / {table['input']['lpips']:.4f}"
    return line + "."


def bdrate_reading(bd: dict[str, Any]) -> str:
    """The largest saving in each metric (negative BD-rate), or that there is none."""
    parts = []
    for metric in ("psnr", "vmaf", "lpips"):
        values = {m: r[f"bd_rate_{metric}"] for m, r in bd["methods"].items() if r.get(f"bd_rate_{metric}") is not None}
        if not values:
            continue
        best = min(values, key=values.get)
        parts.append(f"{metric.upper()}: {display_name(best)} {values[best]:+.1f} %" if values[best] < 0
                     else f"{metric.upper()}: no method saves bits")
    return "Largest saving at equal quality — " + "; ".join(parts) + "."


def _bd_cells(row: dict[str, Any]) -> str:
    """A BD-rate table's PSNR | VMAF | LPIPS cells ("—" where the curves cannot be compared)."""
    return " | ".join("—" if row.get(f"bd_rate_{m}") is None else f"{row[f'bd_rate_{m}']:+.1f} %"
                      for m in ("psnr", "vmaf", "lpips"))


def run_line(root: Path) -> Optional[str]:
    """The data and the hardware behind the numbers, from the synthesis and training summaries."""
    synth, train = _load(root / "synthesis.json"), _load(root / "train" / "stage_a.json")
    if not synth or not train:
        return None
    rates = ", ".join(f"{r['kbps_target']:g}" for r in synth["test"].values())
    return (f"Data: {synth['clips']} clips ({synth['frames']} frames, {synth['encodes']} encodes), test bitrates "
            f"{rates} kbps. Hardware: {train.get('device', '?')}, {train.get('threads', '?')} threads "
            "(from the training summaries).")


def ablation_section(ab: dict[str, Any], paper: dict[str, dict[str, float]]) -> list[str]:
    """The ablation table (differences from the full model, mean ± spread over seeds) and its reading."""
    fmt = lambda v, d: f"{v['mean']:+.{d}f} ± {v['spread']:.{d}f}"  # noqa: E731
    ref = ab["variants"][ab["reference"]]
    out = [f"## Ablations (Fig. 5) — {len(ab['seeds'])} seeds, one reduced budget for every variant", "",
           f"The full model at this budget: PSNR {ref['psnr']['mean']:.2f} dB, LPIPS {ref['lpips']['mean']:.4f}, "
           f"tLP {ref['tlp']['mean']:.4f} (mean over seeds). Differences from it, same seed paired:", "",
           "| variant | ΔPSNR (dB) | ΔLPIPS | ΔtLP | paper's reported change |", "|---|---|---|---|---|"]
    clear = []
    for name, v in ab["variants"].items():
        if name == ab["reference"]:
            continue
        reported = ", ".join(f"{k[2:].upper()} {x:+g}" for k, x in paper.get(name, {}).items()) or "—"
        out.append(f"| {name} | {fmt(v['d_psnr'], 3)} | {fmt(v['d_lpips'], 4)} | {fmt(v['d_tlp'], 4)} | {reported} |")
        clear += [f"{name} {m[2:].upper()} {v[m]['mean']:+.{d}f}" for m, d in (("d_psnr", 3), ("d_lpips", 4), ("d_tlp", 4))
                  if abs(v[m]["mean"]) > v[m]["spread"] and round(abs(v[m]["mean"]), d) > 0]
    out += ["", "Changes larger than their spread over seeds and visible at the table's precision: "
            + ("; ".join(clear) if clear else "none") + ".", ""]
    return out


def codecs_section(bd: dict[str, Any]) -> list[str]:
    """BD-rate per codec against that codec's own decode."""
    out = ["## Codec generalisation — models trained on H.264", "",
           "BD-rate against the plain decode of the same codec (negative = fewer bits at equal quality).", "",
           "| codec | method | PSNR | VMAF | LPIPS |", "|---|---|---|---|---|"]
    for codec, table in bd.items():
        out += [f"| {codec} | {display_name(m)} | {_bd_cells(r)} |" for m, r in table.items()]
    return out + [""]


def resilience_section(res: dict[str, Any]) -> list[str]:
    """LPIPS of the fast restorer per training bitrate at every test bitrate, and which is best on average."""
    tests = [k for k in next(iter(res.values()))["lpips"] if k != "mean"]
    out = ["## Training-bitrate resilience — the fast restorer, LPIPS ↓", "",
           "| trained on | " + " | ".join(t.replace("_", ".") for t in tests) + " | mean |",
           "|---" * (len(tests) + 2) + "|"]
    name = lambda key: "all bitrates" if key == "all" else (  # noqa: E731
        key.removeprefix("trained_").removesuffix("k").replace("_", ".") + " kbps only")
    for key, m in res.items():
        out.append(f"| {name(key)} | " + " | ".join(f"{m['lpips'][t]:.4f}" for t in tests) + f" | {m['lpips']['mean']:.4f} |")
    best = min(res, key=lambda k: res[k]["lpips"]["mean"])
    worst = max(res, key=lambda k: res[k]["lpips"]["mean"])
    out += ["", f"Mean LPIPS spans {res[best]['lpips']['mean']:.4f} ({name(best)}) to {res[worst]['lpips']['mean']:.4f} "
                f"({name(worst)}) across training bitrates.", ""]
    return out


def scaling_section(study: dict[str, Any]) -> list[str]:
    """Each recipe's best validation point and the test gain there, with its compute (`results/scaling.json`)."""
    span = study["span"]
    out = [f"## Quality against compute — Stage A recipes at {study['kbps']:g} kbps", "",
           f"Test span: {span['segments']} runs of {span['segment_frames']} frames. Each row is the recipe's "
           "validation point with the highest ΔPSNR on the val split, and the test gain at that same point. "
           "`main` is the profile's own Stage A (the `train_stage_a` run).", "",
           "| recipe | parameters | it/s | seconds to that point | val ΔPSNR | val ΔLPIPS | test ΔPSNR | test ΔLPIPS "
           "| test ΔPSNR at the end |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in study["recipes"].items():
        best = max(r["curve"], key=lambda p: p["psnr_gain"])
        out.append(f"| {name} | {r['parameters']:,} | {r['it_per_s']:.2f} | {best['seconds']:.0f} | "
                   f"{best['psnr_gain']:+.3f} | {best['lpips_gain']:+.4f} | {best['test_psnr_gain']:+.3f} | "
                   f"{best['test_lpips_gain']:+.4f} | {r['curve'][-1]['test_psnr_gain']:+.3f} |")
    return out + [""]


def nogan_section(claim: dict[str, Any]) -> list[str]:
    """Seed 003's claim (NoGAN reaches the GAN's LPIPS in less wall time), read from `results/gan_vs_nogan.json`."""
    out = ["## GAN against NoGAN — seed 003's wall-time claim", "",
           "| schedule | final val LPIPS | final val PSNR (dB) | seconds in all | seconds to the GAN's final LPIPS |",
           "|---|---|---|---|---|"]
    for name, key in (("phase-2 GAN", "gan"), ("NoGAN", "nogan")):
        reach = claim[f"{key}_seconds_to_reach"]
        out.append(f"| {name} | {claim[f'{key}_final_val_lpips']:.4f} | {claim[f'{key}_final_val_psnr']:.2f} | "
                   f"{claim[f'{key}_seconds']:.0f} | {'never' if reach is None else f'{reach:.0f}'} |")
    verdict = {True: "holds: NoGAN got there first", False: "does not hold: the GAN got there first",
               None: "does not hold: NoGAN never reached it"}[claim["holds"]]
    return out + ["", f"On the validation split the claim {verdict}.", ""]


def training_rows(train_dir: Path) -> list[str]:
    """One line per training summary: wall time, throughput, device."""
    rows = []
    for path in sorted(train_dir.glob("*.json")):
        s = json.loads(path.read_text())
        seconds = total_seconds(s)
        rate = f"{s['it_per_s']:.2f} it/s" if isinstance(s.get("it_per_s"), float) else "per sub-phase in the JSON"
        rows.append(f"| `{path.stem}` | {seconds:.0f} | {rate} | {s.get('device', '?')}, {s.get('threads', '?')} threads |")
    return rows


def build(results_dir: str | Path, profile: str, main_kbps: float) -> str:
    root = Path(results_dir)
    out = [f"# Results (profile `{profile}`)", "",
           "Every number and figure here was written by `dvc repro` from this repository's code and data "
           "(see the top-level README for the data and the hardware); the paper's numbers appear only where "
           "labelled as the paper's (Table 1's reference column, the ablations' reported changes).", ""]
    line = run_line(root)
    if line:
        out += [line, ""]
    table = _load(root / "table1.json")
    if table:
        table = {m: row for m, row in table.items() if m != "span"}
        out += [f"## Table 1 — test clip at {main_kbps:g} kbps", "", (root / "table1.md").read_text(),
                table1_reading(table), "", "Every method against the input at every bitrate: [gains.md](gains.md).", ""]
    bd = _load(root / "bdrate.json")
    if bd:
        out += ["## BD-rate against the compressed input", "",
                f"Interpolation `{bd['interpolation']}` in log-rate; negative = fewer bits at equal quality.", "",
                "| Method | PSNR | VMAF | LPIPS |", "|---|---|---|---|"]
        out += [f"| {display_name(m)} | {_bd_cells(bd['methods'][m])} |" for m in bd["methods"]]
        out += ["", bdrate_reading(bd), "", "Per bitrate: [bitrate_equivalency.csv](bitrate_equivalency.csv).", ""]
    for name, title in (("temporal.md", "Temporal consistency"), ("stage_dissection.md", "Stage dissection"),
                        ("transfer.md", "Transfer — val clips and other codecs against the test-clip gain")):
        if (root / name).is_file():
            out += [f"## {title}", "", (root / name).read_text()]

    for name, section in (("scaling.json", scaling_section),
                          ("ablations.json", lambda d: ablation_section(d, PAPER_DELTAS)),
                          ("codecs.json", codecs_section), ("resilience.json", resilience_section),
                          ("gan_vs_nogan.json", nogan_section)):
        data = _load(root / name)
        if data:
            out += section(data)
    figures = [(f, c) for f, c in FIGURES if (root / "figures" / f).is_file()]
    if figures:
        out += ["## Figures", ""]
        out += [f"**{c}**\n\n![{f}](figures/{f})\n" for f, c in figures]
    rows = training_rows(root / "train")
    if rows:
        out += ["## Training runs", "", "| run | seconds | throughput | device |", "|---|---|---|---|", *rows, ""]
    speed = root / "benchmarks" / "bench_cpu.md"  # `vqe bench`'s own table
    if speed.is_file():
        out += ["## Speed (`vqe bench`, run by hand)", "",
                "**Hand-run benchmark, not produced by `dvc repro`:** the numbers of this section come from the "
                "last manual run of `vqe bench` (its command is in the README's speed section) and may predate the "
                "models of this page.", "", speed.read_text().rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"


def write_results_readme(results_dir: str | Path, profile: str, main_kbps: float) -> str:
    text = build(results_dir, profile, main_kbps)
    write_text(Path(results_dir) / "README.md", text)
    return text
