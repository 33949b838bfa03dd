"""The synthesis stage's figure: sample frames of every clip, ground truth against its decode."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from vqe.data.manifest import Manifest
from vqe.reporting.plot import save


def synthesis_samples(manifest: Manifest, path: str | Path) -> Path:
    """One ground-truth frame per clip above its decode at the lowest and highest rate point."""
    clips = manifest.clips
    fig, axes = plt.subplots(3, len(clips), figsize=(2.6 * len(clips), 5.2), squeeze=False)
    for j, clip in enumerate(clips):
        encodes = sorted((e for e in manifest.encodes if e.clip == clip.name), key=lambda e: e.kbps)
        t = clip.frames // 2
        panels = [("GT", manifest.gt(clip.name)[t])]
        panels += [(f"{e.kbps:.0f} kbps, {e.psnr_input:.1f} dB", manifest.lq(e)[t]) for e in (encodes[0], encodes[-1])]
        for i, (label, img) in enumerate(panels):
            axes[i, j].imshow(img)
            axes[i, j].set_title(f"{clip.name} ({clip.split})" if i == 0 else label, fontsize=8)
            axes[i, j].set_axis_off()
    return save(fig, path)
