"""Training figures: the curves a run logged with dvclive, and the GAN-against-NoGAN comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vqe.reporting.plot import save


def training_curves(live_dir: str | Path, path: str | Path, panels: Optional[list[str]] = None,
                    columns: int = 5) -> Path:
    """Loss and validation curves from a dvclive folder (plots/metrics/{train,val}/<name>.tsv).

    Panels whose metric was never logged (e.g. the adversarial terms of a run with lambda_adv = 0)
    are left out; the rest are laid out `columns` to a row.
    """
    root = Path(live_dir, "plots", "metrics")
    panels = panels or sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.tsv"))
    panels = [name for name in panels if (root / f"{name}.tsv").is_file()]
    if not panels:
        raise FileNotFoundError(f"{root}: no dvclive metrics")
    sns.set_theme(style="whitegrid")
    cols = min(columns, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, panels):
        values = _metric(Path(live_dir), name)
        ax.plot(values.index, values.to_numpy(), marker="o" if len(values) < 30 else None, lw=1.2)
        ax.set(xlabel="iteration", title=name)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"Training: {Path(live_dir).name}")
    fig.tight_layout()
    return save(fig, path)


def _metric(live_dir: Path, name: str) -> pd.Series:
    """One dvclive metric as a Series indexed by step (empty when it was never logged)."""
    tsv = Path(live_dir, "plots", "metrics", f"{name}.tsv")
    if not tsv.is_file():
        return pd.Series(dtype=float)
    data = pd.read_csv(tsv, sep="\t")
    return pd.Series(data[data.columns[-1]].to_numpy(), index=data["step"].to_numpy())


def _validation_over_time(live_dir: Path, offset: float, per_it: Optional[float]) -> pd.DataFrame:
    """Validation scores of one run or sub-phase against wall-clock seconds (+ `offset`).

    Runs logged before `val/seconds` existed are placed by step x `per_it` (mean seconds per iteration).
    """
    lp, psnr, secs = (_metric(live_dir, f"val/{k}") for k in ("lpips", "psnr", "seconds"))
    if lp.empty:
        return pd.DataFrame(columns=["seconds", "lpips", "psnr"])
    t = secs.reindex(lp.index) if not secs.empty else pd.Series(lp.index * (per_it or np.nan), index=lp.index)
    return pd.DataFrame({"seconds": t.to_numpy() + offset, "lpips": lp.to_numpy(), "psnr": psnr.reindex(lp.index)})


def gan_nogan_curves(gan_dir: str | Path, gan_summary: dict, nogan_dir: str | Path, nogan_summary: dict
                     ) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[str, float, float]]]:
    """Validation LPIPS and PSNR against wall-clock seconds for the phase-2 GAN and for NoGAN (its sub-phases
    laid end to end, each span returned as (phase, start, end)); both start from the generator before training."""
    per_it = gan_summary["seconds"] / max(1, gan_summary["iterations"])
    gan = pd.concat([pd.DataFrame({"seconds": [0.0], **{k: [gan_summary["val_stage_a"][k]] for k in ("lpips", "psnr")}}),
                     _validation_over_time(Path(gan_dir), 0.0, per_it)], ignore_index=True)
    start = nogan_summary.get("val_start", nogan_summary["val_pretrain"])
    parts, spans, offset = [pd.DataFrame({"seconds": [0.0], **{k: [start[k]] for k in ("lpips", "psnr")}})], [], 0.0
    for phase, seconds in nogan_summary["seconds"].items():
        parts.append(_validation_over_time(Path(nogan_dir, phase), offset, None))
        spans.append((phase, offset, offset + seconds))
        offset += seconds
    return gan, pd.concat(parts, ignore_index=True), spans


def _first_time_at_or_below(curve: pd.DataFrame, target: float) -> Optional[float]:
    hits = curve.loc[curve["lpips"] <= target, "seconds"]
    return float(hits.min()) if len(hits) else None


def nogan_time_to_gan_lpips(gan: pd.DataFrame, nogan: pd.DataFrame) -> dict:
    """Seed 003's claim, measured: the wall-clock seconds each schedule needs to first reach the GAN's final
    validation LPIPS (curves from `gan_nogan_curves`). `holds` is None when NoGAN never reaches it."""
    target = float(gan["lpips"].iloc[-1])
    gan_t, nogan_t = _first_time_at_or_below(gan, target), _first_time_at_or_below(nogan, target)
    return {"gan_final_val_lpips": target, "nogan_final_val_lpips": float(nogan["lpips"].iloc[-1]),
            "gan_final_val_psnr": float(gan["psnr"].iloc[-1]), "nogan_final_val_psnr": float(nogan["psnr"].iloc[-1]),
            "gan_seconds_to_reach": gan_t, "nogan_seconds_to_reach": nogan_t,
            "gan_seconds": float(gan["seconds"].iloc[-1]), "nogan_seconds": float(nogan["seconds"].max()),
            "holds": None if nogan_t is None else bool(nogan_t < gan_t)}


def gan_vs_nogan(gan_dir: str | Path, gan_summary: dict, nogan_dir: str | Path, nogan_summary: dict,
                 path: str | Path, gan_warmup: int = 0) -> Path:
    """The phase-2 GAN and NoGAN on one wall-clock axis: validation LPIPS and PSNR, and the spread of
    the adversarial losses (D's loss, G's adversarial term) while the game is on (the GAN after its
    `gan_warmup` iterations, NoGAN in its hand-offs)."""
    gan, nogan, spans = gan_nogan_curves(gan_dir, gan_summary, nogan_dir, nogan_summary)
    estimated = _metric(Path(gan_dir), "val/seconds").empty
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    gan_label = "phase-2 GAN" + (" (time = iteration x mean s/it)" if estimated else "")
    for ax, key, label in ((axes[0], "lpips", "validation LPIPS ↓"), (axes[1], "psnr", "validation PSNR (dB) ↑")):
        ax.plot(gan["seconds"], gan[key], marker="o", label=gan_label)
        ax.plot(nogan["seconds"], nogan[key], marker="s", label="NoGAN")
        for (phase, a, b), shade in zip(spans, ("#eeeeee", "#fde7c8", "#f9c9c9") * 8):
            ax.axvspan(a, b, color=shade, alpha=0.5, lw=0)
            ax.text(a, 0.98, f" {phase}", transform=ax.get_xaxis_transform(), rotation=90, ha="left", va="top",
                    fontsize=7, color="0.35")
        ax.set(xlabel="wall-clock seconds of training", ylabel=label)
    axes[0].axhline(gan["lpips"].iloc[-1], ls="--", lw=0.8, color="0.45", label="GAN's final")
    axes[0].legend(fontsize=8)
    rows = []
    for name, series in (("loss_d", "train/loss_d"), ("loss_adv", "train/loss_adv")):
        values = _metric(Path(gan_dir), series)
        rows += [{"method": "GAN (10-it means)", "loss": name, "value": v} for v in values[values.index > gan_warmup]]
        for phase, _, _ in spans:
            if phase.startswith("handoff"):
                rows += [{"method": "NoGAN hand-off (per it)", "loss": name, "value": v}
                         for v in _metric(Path(nogan_dir, phase), series)]
    if rows:
        sns.boxplot(data=pd.DataFrame(rows), x="loss", y="value", hue="method", ax=axes[2])
        axes[2].legend(fontsize=8)
    axes[2].set(title="adversarial losses while the game is on", xlabel="", ylabel="loss")
    fig.suptitle("Phase-2 GAN vs NoGAN (same generator, same data)")
    fig.tight_layout()
    return save(fig, path)


def loss_spread(live_dir: str | Path, names: tuple[str, ...] = ("train/loss_d", "train/loss_adv"),
                after: int = 0) -> dict[str, float]:
    """Standard deviation of logged losses after step `after`: the stability number of the note."""
    out = {}
    for name in names:
        values = _metric(Path(live_dir), name)
        values = values[values.index > after]
        if len(values) > 1:
            out[name.split("/")[-1]] = float(values.std())
    return out
