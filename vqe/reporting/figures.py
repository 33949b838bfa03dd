"""The paper's figures from the evaluation's results (PNG, atomically): rate-distortion curves, visual comparisons,
bitrate equivalency, temporal profiles, the architecture, ablations, codecs, resilience and scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import FancyBboxPatch
from PIL import Image

from vqe.data.manifest import Manifest
from vqe.evaluation.bdrate import RATE
from vqe.evaluation.evaluate import sample_clip
from vqe.evaluation.report import display_name
from vqe.reporting.plot import save

RD_PANELS = (("psnr", "PSNR (dB) ↑"), ("ssim", "SSIM ↑"), ("lpips", "LPIPS ↓"), ("vmaf", "VMAF ↑"))


def rd_curves(rd: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """Quality against the scored frames' bitrate for every method of `rd` (`vqe.evaluation.bdrate.load_rd`)."""
    data = pd.concat([d.assign(method=m) for m, d in rd.items()], ignore_index=True)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(RD_PANELS), figsize=(4.2 * len(RD_PANELS), 3.6))
    for ax, (col, label) in zip(axes, RD_PANELS):
        sns.lineplot(data=data, x=RATE, y=col, hue="method", marker="o", ax=ax, legend=ax is axes[-1])
        ax.set(xlabel="bitrate of the scored frames (kbps)", ylabel=label)
    if axes[-1].get_legend():
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Rate-distortion on the test clip")
    return save(fig, path)


def comparison(images: dict[str, np.ndarray], path: str | Path, crop: Optional[tuple[int, int, int]] = None,
               title: str = "") -> Path:
    """Full frames side by side, and below them the same zoomed crop (y, x, size) of each."""
    n = len(images)
    rows = 2 if crop else 1
    fig, axes = plt.subplots(rows, n, figsize=(3.6 * n, 2.3 * rows + 0.3), squeeze=False)
    for j, (name, img) in enumerate(images.items()):
        axes[0, j].imshow(img)
        axes[0, j].set_title(name, fontsize=9)
        if crop:
            y, x, s = crop
            axes[0, j].add_patch(plt.Rectangle((x, y), s, s, fill=False, color="yellow", lw=1))
            axes[1, j].imshow(img[y:y + s, x:x + s], interpolation="nearest")
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(title)
    return save(fig, path)


def detailed_crop(frame: np.ndarray, size: int) -> tuple[int, int, int]:
    """(y, x, size) of the square with the most gradient energy: where restoration is visible."""
    grey = frame.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    step = max(1, size // 4)
    best = max(((energy[y:y + size, x:x + size].sum(), y, x)
                for y in range(0, energy.shape[0] - size + 1, step)
                for x in range(0, energy.shape[1] - size + 1, step)), default=(0, 0, 0))
    return best[1], best[2], size


def comparison_from_samples(samples_dir: str | Path, manifest_dir: str | Path, path: str | Path,
                            methods: list[str], frame: int) -> Path:
    """Every method's saved sample frame (frame `frame`, see `vqe.evaluation.evaluate`) beside the same ground-truth frame."""

    manifest = Manifest.load(manifest_dir)
    clip = sample_clip(manifest)
    images = {display_name(m): np.asarray(Image.open(Path(samples_dir) / f"{m}.png").convert("RGB")) for m in methods}
    t = frame
    gt = np.asarray(manifest.gt(clip)[t])
    images["ground truth"] = gt
    crop = detailed_crop(gt, max(16, min(gt.shape[:2]) // 3))
    return comparison(images, path, crop, title=f"{clip}, frame {t}, main bitrate")


def bitrate_equivalency(table: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """For each input bitrate, the H.264 bitrate at which the plain stream matches each method's `metric`."""

    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for method, rows in table.groupby("method", sort=False):
        ax.plot(rows["kbps"], rows["equivalent_kbps"], marker="o", label=display_name(method))
    lo, hi = table["kbps"].min(), table["kbps"].max()
    ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=1, label="no change")
    ax.set(xlabel="input bitrate (kbps)", ylabel=f"H.264 bitrate at equal {metric.upper()} (kbps)",
           title=f"Bitrate equivalency ({metric.upper()}; gaps = beyond the tested bitrates)")
    ax.legend(fontsize=7)
    return save(fig, path)


def perception_distortion(rd: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """The perception-distortion plane: RMSE (8-bit scale, from PSNR) against LPIPS, every method at every bitrate."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6.4, 4.8))

    for method, data in rd.items():
        rmse = 255 * 10 ** (-data["psnr"] / 20)
        ax.plot(rmse, data["lpips"], marker="o", label=display_name(method))
    ax.set(xlabel="RMSE (0-255) ↓  distortion", ylabel="LPIPS ↓  perception",
           title="Perception-distortion plane (one point per test bitrate)")
    ax.legend(fontsize=7)
    return save(fig, path)


def moving_row(gt: np.ndarray) -> int:
    """The pixel row whose content changes most over time: where a temporal profile shows flicker."""
    return int(np.abs(np.diff(gt.astype(np.float32), axis=0)).mean(axis=(0, 2, 3)).argmax())


def temporal_profile(clips: dict[str, np.ndarray], row: int, path: str | Path, title: str = "") -> Path:
    """TecoGAN-style temporal profiles: pixel row `row` of every frame, stacked over time (time runs down).

    Smooth, continuous streaks mean temporally stable output; ragged or noisy streaks are flicker.
    """
    n = len(clips)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.6), squeeze=False)
    for ax, (name, frames) in zip(axes[0], clips.items()):
        ax.imshow(frames[:, row], aspect="auto", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set(xlabel="x (pixels)", ylabel="frame" if ax is axes[0, 0] else None)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or f"Temporal profile of row {row}")
    fig.tight_layout()
    return save(fig, path)


def frame_strip(clips: dict[str, np.ndarray], path: str | Path, crop: Optional[tuple[int, int, int]] = None,
                title: str = "") -> Path:
    """Consecutive frames side by side (columns), one row per clip (input / ours / ground truth), optionally cropped."""
    names = list(clips)
    count = len(clips[names[0]])
    fig, axes = plt.subplots(len(names), count, figsize=(2.2 * count, 2.0 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for t in range(count):
            img = clips[name][t]
            if crop:
                y, x, s = crop
                img = img[y:y + s, x:x + s]
            axes[i, t].imshow(img, interpolation="nearest")
            axes[i, t].set_xticks([])
            axes[i, t].set_yticks([])
            if t == 0:
                axes[i, t].set_ylabel(name, fontsize=8)
            if i == 0:
                axes[i, t].set_title(f"t + {t}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def _box(ax, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7.5)


def _arrow(ax, x0: float, y0: float, x1: float, y1: float) -> None:
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="0.3", lw=1))


def architecture(config: dict, scale: int, disc: dict, path: str | Path) -> Path:
    """Fig. 1 drawn from a saved generator's own configuration (`model.config`), not from a picture."""
    a, b = config["stage_a"], config["stage_b"]
    n = a["n"]
    base = "bicubic ×%d" % scale if a["mode"] == "sra" else "centre frame"
    stages = [(f"input window\n2N+1 = {2 * n + 1} frames", "#dddddd")]
    if a.get("align", "pcd") == "pcd":
        stages += [(f"features\n{a['extract_blocks']} res. blocks", "#cfe2f3"),
                   (f"PCD alignment\n{len(a['align_channels'])} levels {a['align_channels']}\n"
                    f"{a['offset_groups']} offset groups", "#cfe2f3"),
                   (f"1×1 fusion\n→ {a['channels']} ch", "#cfe2f3")]
    else:
        stages += [(f"frames stacked\non channels\n3×3 conv → {a['channels']} ch", "#cfe2f3")]
    attention = "+ ECBAM" if a["attention"] else "no ECBAM"
    stages += [(f"{a['blocks']} × RRDB\n{attention}, growth {a['growth']}" if a.get("block", "rrdb") == "rrdb"
                else f"{a['blocks']} × res. block\n{attention}", "#cfe2f3")]
    if a["mode"] != "sra":
        stages += [("conv", "#cfe2f3")]
    elif a.get("tail", "hr") == "hr":
        stages += [(f"pixel shuffle ×{scale}\n+ convs at output size", "#cfe2f3")]
    else:
        stages += [(f"conv → 3·{scale}² ch\npixel shuffle ×{scale}", "#cfe2f3")]
    stages += [(f"+ {base}\n= Y^A (Stage A)", "#fff2cc")]
    if b["enabled"]:
        stages += [(f"U-Net (1 level)\n{b['channels']} filters\n{b['blocks']} res. blocks", "#d9ead3"),
                   ("+ Y^A\n= Ŷ (Stage B)", "#fff2cc")]
    fig, ax = plt.subplots(figsize=(1.75 * len(stages), 3.2))
    w, h, gap = 1.45, 1.0, 0.3
    for i, (text, color) in enumerate(stages):
        x = i * (w + gap)
        _box(ax, x, 1.2, w, h, text, color)
        if i:
            _arrow(ax, x - gap, 1.7, x, 1.7)
    kinds = ", ".join(disc.get("kinds", []))
    _box(ax, (len(stages) - 3) * (w + gap), 0.0, 3 * w + 2 * gap, 0.75,
         f"discriminators ({kinds}):\nPatchGAN, {disc.get('channels')} ch, {disc.get('layers')} stride-2 layers;\n"
         "relativistic average loss (phase 2 only)", "#f4cccc")
    ax.set_xlim(-0.1, len(stages) * (w + gap))
    ax.set_ylim(-0.2, 2.5)
    ax.set_axis_off()
    ax.set_title("GAN-EVH generator G = G_B(G_A(X_{t−N:t+N})) as configured (Stage A: blue, Stage B: green)",
                 fontsize=9)
    return save(fig, path)


ABLATION_BARS = (("d_psnr", "ΔPSNR (dB) ↑"), ("d_lpips", "ΔLPIPS ↓"), ("d_tlp", "ΔtLP ↓"))


def ablation_bars(summary: dict, path: str | Path, paper: Optional[dict[str, dict[str, float]]] = None) -> Path:
    """Fig. 5: each variant's change of PSNR, LPIPS and tLP against the full model (mean over seeds,
    error bars = spread), with the paper's reported changes as hollow markers where it gives them."""
    names = [n for n in summary["variants"] if n != summary["reference"]]
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(ABLATION_BARS), figsize=(4.4 * len(ABLATION_BARS), 3.8))
    y = np.arange(len(names))
    for ax, (key, label) in zip(axes, ABLATION_BARS):
        means = [summary["variants"][n][key]["mean"] for n in names]
        errs = [summary["variants"][n][key]["spread"] for n in names]
        colors = ["tab:green" if (m > 0) == (key == "d_psnr") else "tab:red" for m in means]
        ax.barh(y, means, xerr=errs, color=colors, alpha=0.8, capsize=3)
        marks = [(paper[n][key], i) for i, n in enumerate(names) if paper and key in paper.get(n, {})]
        if marks:
            ax.plot(*zip(*marks), marker="D", mfc="none", mec="black", ls="none", label="paper (reported)")
        ax.axvline(0, color="0.3", lw=1)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(names))
        ax.set(xlabel=label)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
    seeds = len(summary["seeds"])
    fig.suptitle(f"Ablations against the full model (mean over {seeds} seed{'s' * (seeds > 1)}, bars = spread)")
    fig.tight_layout()
    return save(fig, path)


def codec_rd(rd: dict[str, dict[str, pd.DataFrame]], h264: dict[str, pd.DataFrame], path: str | Path,
             panels: tuple[tuple[str, str], ...] = (("psnr", "PSNR (dB) ↑"), ("lpips", "LPIPS ↓"))) -> Path:
    """Codec generalisation: one column per codec, quality against bitrate; dashed = the plain decode,
    solid = the H.264-trained models on that codec's input; grey = the same on H.264 input."""

    sns.set_theme(style="whitegrid")
    codecs = list(rd)
    fig, axes = plt.subplots(len(panels), len(codecs), figsize=(max(4.2 * len(codecs), 6.4), 3.2 * len(panels) + 1),
                             squeeze=False, sharey="row")
    colors = dict(zip(sorted({m for c in codecs for m in rd[c]}), sns.color_palette()))
    for j, codec in enumerate(codecs):
        for i, (col, label) in enumerate(panels):
            ax = axes[i, j]
            for method, data in rd[codec].items():
                ls = "--" if method == "input" else "-"
                name = "plain decode (bicubic up-scaled)" if method == "input" else display_name(method)
                ax.plot(data[RATE], data[col], ls=ls, marker="o", color=colors[method], label=name)
                if method in h264:
                    ax.plot(h264[method][RATE], h264[method][col], ls=ls, color="0.6", lw=1,
                            label=f"{name}, on H.264 input")
            ax.set(xlabel="bitrate of the scored frames (kbps)", ylabel=label if j == 0 else None,
                   title=codec if i == 0 else None)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Models trained on H.264, tested on other codecs")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * len(labels) / 2, 1, 1))
    return save(fig, path)


def resilience(table: pd.DataFrame, path: str | Path, metrics: tuple[str, ...] = ("psnr", "lpips")) -> Path:
    """Training-bitrate resilience: each model's quality at every test bitrate, one line per training bitrate."""
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for trained, rows in table.groupby("trained_kbps", sort=False):
            label = "all bitrates" if trained == "all" else f"trained at {trained} kbps"
            ax.plot(rows["test_kbps"], rows[metric], marker="o", ls=":" if trained == "all" else "-", label=label)
        ax.set(xlabel="test bitrate (kbps)", ylabel=f"{metric.upper()} {'↓' if metric == 'lpips' else '↑'}")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.suptitle("Training-bitrate resilience (the fast restorer)")
    fig.tight_layout()
    return save(fig, path)


SCALING_PANELS = (("psnr_gain", "ΔPSNR (dB) ↑"), ("lpips_gain", "ΔLPIPS ↓"))


def scaling(study: dict, path: str | Path) -> Path:
    """Quality against training seconds (log axis), one line per recipe: validation solid, test dashed
    (`vqe.studies.scaling.collect`'s JSON); the dotted zero line is the compressed input."""
    rows = [{"recipe": name, "split": split, "seconds": p["seconds"], **{k: p[prefix + k] for k, _ in SCALING_PANELS}}
            for name, r in study["recipes"].items() for p in r["curve"]
            for split, prefix in (("val", ""), ("test", "test_"))]
    data = pd.DataFrame(rows)
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(SCALING_PANELS), figsize=(5.2 * len(SCALING_PANELS), 3.8))
    for ax, (col, label) in zip(axes, SCALING_PANELS):
        sns.lineplot(data=data, x="seconds", y=col, hue="recipe", style="split", style_order=["val", "test"],
                     marker="o", ax=ax, legend=ax is axes[-1])
        ax.axhline(0, color="k", ls=":", lw=1)
        ax.set(xscale="log", xlabel="training wall-clock seconds (log)", ylabel=label)
    if axes[-1].get_legend():
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"Stage A recipes: gain over the input against training time ({study['kbps']:g} kbps)")
    return save(fig, path)
