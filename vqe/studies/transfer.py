"""Transfer: does a model's gain on the test clip hold on content and codecs it was not tuned for?

Every model of `codecs.methods` is scored on each validation clip (at `eval.main_kbps`, over the
`eval.segments` span, through the same `evaluate_methods` as Table 1) and read back from the codec study,
where it restores H.265, VP9 and AV1 decodes. Each gain is taken against the `input` row of the same content
and codec, and set beside the model's gain on the test clip (Table 1): a ratio below `MIN_RATIO` says the
gain does not carry over there. A ratio means nothing when the test gain is not a gain (<= 0); the table
says so instead of printing one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from vqe.config import Params
from vqe.data.manifest import Manifest
from vqe.evaluation.evaluate import evaluate_methods, method_by_name
from vqe.evaluation.report import display_name
from vqe.util.atomic import write_json, write_text
from vqe.util.errors import VQEError

MIN_RATIO = 0.7  # the bar: a gain elsewhere at least 70 % of the test-clip gain


def run_val(params: Params, manifest: Manifest, results_dir: str | Path = "results/transfer",
            models_dir: str | Path = "models") -> dict[str, list[dict]]:
    """Score every `codecs.methods` model on the val clips at the main bitrate (rows under `results_dir`)."""
    methods = {m: method_by_name(m, manifest, params.eval, models_dir) for m in params.codecs.methods}
    return evaluate_methods(methods, manifest, params.eval, results_dir=results_dir, split="val",
                            kbps=params.eval.main_kbps)


def _rows_at(path: Path, kbps: float) -> dict[str, dict[str, float]]:
    """{clip: row} of one method's eval JSON at `kbps`."""
    if not path.is_file():
        raise VQEError(f"{path}: not found; run the stage that writes it (evaluate, codec or generalisation)")
    rows = [r for r in json.loads(path.read_text())["clips"] if r["kbps_target"] == kbps]
    if not rows:
        raise VQEError(f"{path}: no row at {kbps:g} kbps")
    return {r["clip"]: r for r in rows}


def _gains(results: Path, method: str, kbps: float) -> dict[str, dict[str, float]]:
    """{clip: {psnr_gain, lpips_gain}} of `method` over `input` in one results folder."""
    rows, base = _rows_at(results / "eval" / f"{method}.json", kbps), _rows_at(results / "eval" / "input.json", kbps)
    return {clip: {"psnr_gain": r["psnr"] - base[clip]["psnr"], "lpips_gain": r["lpips"] - base[clip]["lpips"]}
            for clip, r in rows.items()}


def ratio(gain: float, test_gain: float) -> Optional[float]:
    """gain / test_gain when the test gain is a gain (> 0), else None."""
    return gain / test_gain if test_gain > 0 and math.isfinite(gain) else None


def transfer_table(params: Params, results_dir: str | Path = "results") -> dict[str, Any]:
    """Per model: the test-clip gain (Table 1's span) and every val clip's and codec's gain with its ratio.

    LPIPS gains are negated for the ratio (a lower LPIPS is the gain)."""
    results = Path(results_dir)
    kbps = params.eval.main_kbps
    table: dict[str, Any] = {"kbps": kbps, "min_ratio": MIN_RATIO, "models": {}}
    for method in params.codecs.methods:
        if method == "input":
            continue
        test = _gains(results, method, kbps)
        test_psnr = sum(g["psnr_gain"] for g in test.values()) / len(test)
        test_lpips = sum(g["lpips_gain"] for g in test.values()) / len(test)
        places = {f"val: {clip}": g for clip, g in _gains(results / "transfer", method, kbps).items()}
        for codec in params.codecs.codecs:
            for clip, g in _gains(results / "codecs" / codec, method, kbps).items():
                places[f"{codec}: {clip}"] = g
        table["models"][method] = {
            "test": {"psnr_gain": test_psnr, "lpips_gain": test_lpips},
            "elsewhere": {where: {**g, "psnr_ratio": ratio(g["psnr_gain"], test_psnr),
                                  "lpips_ratio": ratio(-g["lpips_gain"], -test_lpips)}
                          for where, g in places.items()}}
    return table


def transfer_markdown(table: dict[str, Any]) -> str:
    """The table as Markdown, with every ratio under `min_ratio` in bold and a line per model saying where."""

    lines = [f"Gains over the compressed input at {table['kbps']:g} kbps on the test clip (Table 1's span) and "
             f"elsewhere; ratio = gain elsewhere / test gain (bold: under {table['min_ratio']:.0%}; "
             "— : the test gain is not a gain, so no ratio).", "",
             "| model | content | ΔPSNR (dB) | ratio | ΔLPIPS | ratio |", "|---|---|---|---|---|---|"]
    notes = []
    for method, m in table["models"].items():
        name = display_name(method)
        lines.append(f"| {name} | test clip | {m['test']['psnr_gain']:+.3f} | | {m['test']['lpips_gain']:+.4f} | |")
        short = []
        for where, g in m["elsewhere"].items():
            cells = [_ratio_cell(g["psnr_ratio"], table["min_ratio"]), _ratio_cell(g["lpips_ratio"], table["min_ratio"])]
            lines.append(f"| {name} | {where} | {g['psnr_gain']:+.3f} | {cells[0]} | {g['lpips_gain']:+.4f} | {cells[1]} |")
            short += [f"{where} ({kind})" for kind, r in (("PSNR", g["psnr_ratio"]), ("LPIPS", g["lpips_ratio"]))
                      if r is not None and r < table["min_ratio"]]
        if short:
            notes.append(f"- {name}: under {table['min_ratio']:.0%} of its test gain on " + ", ".join(short) + ".")
    return "\n".join(lines + [""] + notes) + "\n"


def _ratio_cell(r: Optional[float], bar: float) -> str:
    if r is None:
        return "—"
    text = f"{r:.0%}"
    return f"**{text}**" if r < bar else text


def write_transfer(table: dict[str, Any], json_path: str | Path = "results/transfer.json",
                   md_path: str | Path = "results/transfer.md") -> str:
    write_json(json_path, table)
    md = transfer_markdown(table)
    write_text(md_path, md)
    return md
